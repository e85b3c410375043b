"""Policy checks: greylisting with postgrey's behaviour (`greylist`), its
shared store (`store`: the memory-mapped file or Redis), postgrey's
whitelist files (`whitelist`) and the policy delegation protocol server
behind `postier greylistd` (`server`).  The check_policy_service client is
postier.smtpd.policy.

Reads no main.cf parameters itself (see each module).
"""
