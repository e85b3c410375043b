"""SpamAssassin rule files (.cf/.pre) parsed the way SpamAssassin 4.0.1 does.

    rs = load_rules(["/usr/share/spamassassin", "/etc/spamassassin"])
    rs.rules["HTML_MESSAGE"]         # Rule(kind="body-eval", ...)
    rs.score("HTML_MESSAGE")          # score set 0 (no network, no Bayes)
    rs.warnings                       # ["FILE, line N: config: ...", ...]

Reading order (Mail::SpamAssassin::init): the site directory's *.pre, the
system directory's *.pre, the system directory's *.cf, the site directory's
*.cf (each sorted by name).  A directory list given here is read as
[system..., site]: every directory but the last is a "system" rules
directory, the last one the "site" one; a file path is read as is.

The line grammar is Mail::SpamAssassin::Conf::Parser's: `#` comments (`\\#`
is a literal #), `lang xx` prefixes (skipped: postier runs as the C locale),
`if EXPR` / `ifplugin NAME` / `else` / `endif` (per file), `include`,
`require_version`, and the commands.  Rule commands: header (with :raw
:addr :name :host :domain :ip :revip :first :last, exists:, `[if-unset:
...]`, eval:), body, rawbody, uri, full (regex or eval:), meta (boolean and
arithmetic expressions, rules_matching()), mimeheader, reuse; rule
attributes: score (four score sets, relative `(n)` scores), describe,
tflags, priority; ReplaceTags (replace_tag/pre/inter/post, replace_rules,
replace_start/end); and the settings the engine reads (required_score,
redirector_pattern, util_rb_tld/2tld/3tld, clear_util_rb, trusted_networks,
internal_networks, msa_networks, envelope_sender_header,
originating_ip_headers, body_part_scan_size, rawbody_part_scan_size,
normalize_charset, freemail_domains, ...).  Every other SpamAssassin
setting is accepted and ignored; an unknown command is a warning, like
SpamAssassin's "config: failed to parse line".

Bad lines never raise: they are skipped with a warning naming file and line
(SpamAssassin's wording).  Parameters read: none (callers pass the
directories, see postier.content.spam.scanner).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from postier.content.spam import bre as re

SA_VERSION = "4.000001"          # Mail::SpamAssassin::VERSION
PERL_VERSION = "5.036000"

# rule kinds
HEADER = "header"
BODY = "body"
RAWBODY = "rawbody"
URI = "uri"
FULL = "full"
META = "meta"
MIMEHEADER = "mimeheader"
EMPTY = "empty"
HEAD_EVAL = "header-eval"
BODY_EVAL = "body-eval"
RAWBODY_EVAL = "rawbody-eval"
FULL_EVAL = "full-eval"
RBL_EVAL = "rbl-eval"
REGEX_KINDS = (HEADER, BODY, RAWBODY, URI, FULL, MIMEHEADER)
EVAL_KINDS = (HEAD_EVAL, BODY_EVAL, RAWBODY_EVAL, FULL_EVAL, RBL_EVAL)

RULENAME_RE = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]{0,127}$")
# Mail::SpamAssassin::Constants::ARITH_EXPRESSION_LEXER
ARITH_LEXER = re.compile(r"""(?:
        [\-\+\d\.]+|
        \w[\w\:]*|
        [\(\)]|
        \|\||
        \&\&|
        \^|
        !(?!=)|
        >=?|
        <=?|
        ==|
        !=|
        [\+\-\*\/]|
        [\?:]
      )""", re.X | re.A)
META_RULES_MATCHING_RE = re.compile(
    r"(?<!_)\brules_matching\(\s*([_a-zA-Z*?][_a-zA-Z0-9*?]{0,127})\s*\)", re.A)
_HEADER_TEST_RE = re.compile(r"^([\w.-]+(?:\:|(?:\:[a-z]+){1,2})?)\s*([=!]~)\s*(.+)$", re.S | re.A)
_HEADER_MOD_OK = re.compile(r":(?!(?:raw|addr|name|host|domain|ip|revip|first|last)\b)", re.I)
_IF_UNSET_RE = re.compile(r"\s+\[if-unset:\s+(.+)\]$", re.S)
_MIMEHEADER_RE = re.compile(r"^([^:\s]+(?:\:(?:raw)?)?)\s*([=!]~)\s*(.+)$", re.S)
_EVAL_ARGS_RE = re.compile(r"""^\s* (?: (['"]) (.*?) \1 | ( [\d\.:A-Za-z-]+? ) ) \s* (?: , \s* | $ )""",
                           re.X | re.S)

# Every setting SpamAssassin 4.0.1 and its bundled plugins know (Conf.pm and
# Plugin/*.pm "setting"/"command"/"aliases"); lines with these keys are
# accepted even when the engine has no use for them.
KNOWN_SETTINGS = frozenset("""
    add_header adsp_override all_spam_to allow_user_rules always_trust_envelope_sender askdns
    asn_lookup asn_lookup_ipv6 asn_prefer_geodb asn_prefix asn_use_dns asn_use_geodb
    authres_ignored_authserv authres_networks authres_trusted_authserv auto_welcomelist_db_modules
    auto_welcomelist_distinguish_signed auto_welcomelist_factor auto_welcomelist_factory
    auto_welcomelist_file_mode auto_welcomelist_ipv4_mask_len auto_welcomelist_ipv6_mask_len
    auto_welcomelist_path auto_whitelist_db_modules auto_whitelist_distinguish_signed
    auto_whitelist_factor auto_whitelist_factory auto_whitelist_file_mode
    auto_whitelist_ipv4_mask_len auto_whitelist_ipv6_mask_len auto_whitelist_path
    bayes_auto_expire bayes_auto_learn bayes_auto_learn_on_error
    bayes_auto_learn_threshold_nonspam bayes_auto_learn_threshold_spam bayes_expiry_max_db_size
    bayes_file_mode bayes_ignore_from bayes_ignore_header bayes_ignore_to bayes_journal_max_size
    bayes_learn_during_report bayes_learn_to_journal bayes_max_token_length bayes_min_ham_num
    bayes_min_spam_num bayes_path bayes_seen_ttl bayes_sql_dsn bayes_sql_override_username
    bayes_sql_password bayes_sql_username bayes_sql_username_authorized bayes_stopword_languages
    bayes_store_module bayes_token_sources bayes_token_ttl bayes_use_hapaxes blacklist_from
    blacklist_subject blacklist_to blacklist_uri_host blocklist_from blocklist_subject
    blocklist_to blocklist_uri_host body body_part_scan_size clear_asn_lookups
    clear_dns_query_restriction clear_dns_query_restrictions clear_dns_servers clear_headers
    clear_internal_networks clear_msa_networks clear_originating_ip_headers clear_report_template
    clear_trusted_networks clear_unsafe_report_template clear_uridnsbl_skip_domain
    clear_url_shortener clear_util_rb country_db_path country_db_type dcc_body_max dcc_dccifd_path
    dcc_fuz1_max dcc_fuz2_max dcc_home dcc_learn_score dcc_options dcc_path dcc_rep_percent
    dcc_timeout dccifd_options def_welcomelist_auth def_welcomelist_from_dkim
    def_welcomelist_from_rcvd def_welcomelist_from_spf def_whitelist_auth def_whitelist_from_dkim
    def_whitelist_from_rcvd def_whitelist_from_spf delist_uri_host describe descriptions
    dkim_minimum_key_bits dkim_timeout dmarc_save_reports dns_available dns_block_rule
    dns_block_time dns_local_ports_avoid dns_local_ports_none dns_local_ports_permit dns_options
    dns_query_restriction dns_server dns_test_interval do_not_use_mail_spf
    do_not_use_mail_spf_query enable_compat enlist_addrlist enlist_uri_host envelope_sender_header
    extracttext_maxparts extracttext_timeout fns_add_addrlist fns_check fns_extrachars
    fns_ignore_dkim fns_ignore_headers fns_remove_addrlist fold_headers
    freemail_add_describe_email freemail_import_def_welcomelist_auth
    freemail_import_def_whitelist_auth freemail_import_welcomelist_auth
    freemail_import_whitelist_auth freemail_max_body_emails freemail_max_body_freemails
    freemail_skip_bulk_envfrom freemail_skip_when_over_max full geodb_module geodb_options
    geodb_search_path hashbl_email_domain_alias hashbl_email_regex hashbl_email_welcomelist
    hashbl_email_whitelist hashbl_ignore header ignore_always_matching_regexps
    ignore_received_spf_header inactive_languages internal_networks loadplugin lock_method
    max_short_url_redirections max_short_urls mbox_format_from_regex meta mimeheader more_spam_to
    msa_networks normalize_charset ok_languages ok_locales olemacro_download_marker
    olemacro_extended_scan olemacro_exts olemacro_macro_exts olemacro_max_file olemacro_num_mime
    olemacro_num_zip olemacro_prefer_contentdisposition olemacro_skip_ctypes olemacro_skip_exts
    olemacro_zip_depth olemacro_zips originating_ip_headers parse_dkim_uris
    phishing_openphish_feed phishing_phishstats_feed phishing_phishstats_minscore
    phishing_phishtank_feed phishing_uri_noparam priority pyzor_count_min pyzor_fork pyzor_max
    pyzor_options pyzor_path pyzor_perl pyzor_server_file pyzor_timeout pyzor_welcomelist_factor
    pyzor_welcomelist_min pyzor_whitelist_factor pyzor_whitelist_min rawbody
    rawbody_part_scan_size razor_config razor_fork razor_timeout rbl_headers rbl_timeout
    redirector_pattern remove_header replace_end replace_inter replace_post replace_pre
    replace_rules replace_start replace_tag report report_charset report_contact report_hostname
    report_safe report_safe_copy_headers report_template report_wrap_width require_version
    required_hits required_score resource_limit_cpu resource_limit_mem reuse rewrite_header
    run_reuse_tests_only score shortcircuit shortcircuit_ham_score shortcircuit_max_spam_score
    shortcircuit_min_ham_score shortcircuit_spam_score skip_rbl_checks skip_uribl_checks
    spamcop_from_address spamcop_max_report_size spamcop_relayhost spamcop_to_address spf_timeout
    subjprefix test textcat_acceptable_score textcat_max_languages textcat_max_ngrams
    textcat_optimal_ngrams tflags time_limit trigger_config trigger_ratio trigger_target
    trusted_networks tryplugin txrep_autolearn txrep_dilution_factor txrep_expiry_days
    txrep_factor txrep_factory txrep_ipv4_mask_len txrep_ipv6_mask_len txrep_learn_bonus
    txrep_learn_penalty txrep_report_details txrep_spf txrep_track_messages
    txrep_user2global_ratio txrep_weight_domain txrep_weight_email txrep_weight_email_ip
    txrep_weight_helo txrep_weight_ip txrep_welcomelist_out txrep_whitelist_out unblacklist_from
    unblocklist_from unsafe_report unsafe_report_template unwelcomelist_auth unwelcomelist_from
    unwelcomelist_from_dkim unwelcomelist_from_rcvd unwelcomelist_from_spf unwhitelist_auth
    unwhitelist_from unwhitelist_from_dkim unwhitelist_from_rcvd unwhitelist_from_spf uri
    uri_block_cc uri_block_cidr uri_block_cont uri_block_exclude uri_block_isp
    uri_country_db_isp_path uri_country_db_path uri_detail uri_host_lists uridnsbl
    uridnsbl_max_domains uridnsbl_skip_domain uridnsbl_skip_mailto uridnsbl_timeout uridnssub
    urifullnsrhsbl urifullnsrhssub urinsrhsbl urinsrhssub urirhsbl urirhssub url_shortener
    url_shortener_cache_autoclean url_shortener_cache_dsn url_shortener_cache_password
    url_shortener_cache_ttl url_shortener_cache_type url_shortener_cache_username
    url_shortener_get url_shortener_loginfo url_shortener_timeout url_shortener_user_agent
    use_auto_welcomelist use_auto_whitelist use_bayes use_bayes_rules use_dcc use_dcc_rep
    use_learner use_newest_received_spf_header use_pyzor use_razor2 use_txrep user_awl_dsn
    user_awl_sql_override_username user_awl_sql_password user_awl_sql_table user_awl_sql_username
    user_scores_dsn user_scores_fallback_to_global user_scores_ldap_password
    user_scores_ldap_username user_scores_sql_custom_query user_scores_sql_password
    user_scores_sql_username util_rb_2tld util_rb_3tld util_rb_tld version_tag
    welcomelist_allows_relays welcomelist_auth welcomelist_bounce_relays welcomelist_from
    welcomelist_from_dkim welcomelist_from_rcvd welcomelist_from_spf welcomelist_subject
    welcomelist_to welcomelist_uri_host whitelist_allows_relays whitelist_auth
    whitelist_bounce_relays whitelist_from whitelist_from_dkim whitelist_from_rcvd
    whitelist_from_spf whitelist_subject whitelist_to whitelist_uri_host
    freemail_domains freemail_whitelist freemail_welcomelist
""".split())

# `if can(Module::method)`: the methods SpamAssassin 4.0.1 answers true for,
# by module; a plugin module counts only when it is loaded.
_CAN_TRUE = {
    "Mail::SpamAssassin::Conf": {
        "feature_originating_ip_headers", "feature_dns_local_ports_permit_avoid",
        "feature_bayes_auto_learn_on_error", "feature_uri_host_listed",
        "feature_yesno_takes_args", "feature_bug6558_free", "feature_edns",
        "feature_dns_query_restriction", "feature_registryboundaries", "feature_geodb",
        "feature_dns_block_rule", "feature_compile_regexp", "feature_meta_rules_matching",
        "feature_subjprefix", "feature_bayes_stopwords", "feature_get_host",
        "feature_blocklist_welcomelist", "feature_welcomelist_blocklist",
        "feature_header_address_parser", "feature_local_tests_only",
        "feature_header_first_last", "feature_header_match_many", "feature_capture_rules",
        "has_tflags_nosubject", "perl_min_version_5010000"},
    "Mail::SpamAssassin::Plugin::ASN": {"has_asn_lookup_ipv6", "has_asn_geodb", "has_check_asn",
                                        "has_check_asn_tag"},
    "Mail::SpamAssassin::Plugin::AskDNS": {"has_tag_header"},
    "Mail::SpamAssassin::Plugin::BodyEval": {"has_check_body_length",
                                             "has_plaintext_body_sig_ratio"},
    "Mail::SpamAssassin::Plugin::DKIM": {"has_arc"},
    "Mail::SpamAssassin::Plugin::DNSEval": {"has_tflags_domains_only", "has_tflags_ips_only"},
    "Mail::SpamAssassin::Plugin::DecodeShortURLs": {
        "has_short_url", "has_autoclean", "has_short_url_code", "has_user_agent", "has_get",
        "has_clear", "has_timeout", "has_max_redirections", "has_short_url_redir"},
    "Mail::SpamAssassin::Plugin::HashBL": {
        "has_hashbl_bodyre", "has_hashbl_bodyre_num", "has_hashbl_emails", "has_hashbl_uris",
        "has_hashbl_ignore", "has_hashbl_email_regex", "has_hashbl_email_welcomelist",
        "has_hashbl_email_whitelist", "has_hashbl_tag", "has_hashbl_sha256",
        "has_hashbl_attachments", "has_hashbl_email_domain", "has_hashbl_email_domain_alias"},
    "Mail::SpamAssassin::Plugin::MIMEEval": {"has_check_for_ascii_text_illegal",
                                             "has_check_abundant_unicode_ratio",
                                             "has_check_qp_ratio"},
    "Mail::SpamAssassin::Plugin::MIMEHeader": {"has_all_header", "has_tflags_range",
                                               "has_tflags_concat", "has_tflags_multiple",
                                               "has_capture_rules"},
    "Mail::SpamAssassin::Plugin::SPF": {"has_check_for_spf_errors"},
    "Mail::SpamAssassin::Plugin::URIDNSBL": {"has_tflags_domains_only", "has_uridnsbl_for_a",
                                             "has_tflags_a", "has_tflags_ns", "has_tflags_notrim"},
}
_PLUGIN_RENAMES = {"Mail::SpamAssassin::Plugin::Dmarc": "Mail::SpamAssassin::Plugin::DMARC",
                   "Mail::SpamAssassin::Plugin::WhiteListSubject":
                   "Mail::SpamAssassin::Plugin::WelcomeListSubject"}


@dataclass
class Rule:
    """One rule as defined (the last definition of a name wins)."""

    name: str
    kind: str                       # HEADER, BODY, ..., META, *_EVAL, EMPTY
    text: str                       # the definition after the name
    path: str = ""
    line: int = 0
    regex: str = ""                 # the delimited Perl regex (/re/flags), for regex kinds
    header: str = ""                # header rules: name with modifiers (From:addr)
    negate: bool = False            # `!~`
    exists: bool = False            # header NAME exists:Header
    if_unset: str | None = None     # `[if-unset: STRING]`
    function: str = ""              # eval rules: function name
    args: list[str] = field(default_factory=list)


@dataclass
class RuleSet:
    """Everything the engine needs from the rule files."""

    rules: dict[str, Rule] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    tflags: dict[str, str] = field(default_factory=dict)
    priority: dict[str, int] = field(default_factory=dict)
    replace_tag: dict[str, str] = field(default_factory=dict)
    replace_pre: dict[str, str] = field(default_factory=dict)
    replace_inter: dict[str, str] = field(default_factory=dict)
    replace_post: dict[str, str] = field(default_factory=dict)
    replace_rules: set[str] = field(default_factory=set)
    replace_start: str = "<"
    replace_end: str = ">"
    settings: dict[str, list[str]] = field(default_factory=dict)   # other settings, in order
    plugins: set[str] = field(default_factory=set)
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    required_score: float = 5.0
    score_set: int = 0

    def score(self, name: str) -> float:
        s = self.scores.get(name)
        return s[self.score_set] if s else 0.0

    def setting(self, key: str) -> list[str]:
        return self.settings.get(key, [])

    def has_flag(self, name: str, flag: str) -> bool:
        return re.search(r"\b" + re.escape(flag) + r"\b", self.tflags.get(name, "")) is not None

    def maxhits(self, name: str) -> int:
        m = re.search(r"\bmaxhits=(\d+)\b", self.tflags.get(name, ""))
        return int(m.group(1)) if m else 0


# ---------------------------------------------------------------- reading

SHOWN_MAX = 200     # characters of a refused meta expression a warning shows


def _shown(expr: str) -> str:
    """A refused meta expression as a warning shows it: whole up to
    SHOWN_MAX characters (SpamAssassin prints it whole), else its start and
    its length (a generated meta can be hundreds of kilobytes)."""
    if len(expr) <= SHOWN_MAX:
        return expr
    return f"{expr[:SHOWN_MAX]}... ({len(expr)} characters)"


def rule_files(dirs: list[str]) -> list[str]:
    """The files SpamAssassin reads for a [system..., site] directory list."""
    if not dirs:
        return []
    site = dirs[-1] if len(dirs) > 1 else None
    system = dirs[:-1] if len(dirs) > 1 else dirs

    def files(path: str, ext: str) -> list[str]:
        if os.path.isdir(path):
            return sorted(glob.glob(os.path.join(glob.escape(path), "*." + ext)),
                          key=lambda p: (os.path.basename(p) != "updates_spamassassin_org.cf",
                                         os.path.basename(p)))
        if os.path.isfile(path) and path.endswith("." + ext):
            return [path]
        return []

    out: list[str] = []
    if site:
        out += files(site, "pre")
    for d in system:
        out += files(d, "pre")
    for d in system:
        out += files(d, "cf")
    if site:
        out += files(site, "cf")
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def load_rules(dirs: list[str], extra_text: str = "") -> RuleSet:
    """Parse the rule files of `dirs` (see rule_files) plus `extra_text`."""
    p = Parser()
    for path in rule_files(dirs):
        p.parse_file(path)
    if extra_text:
        p.parse_text(extra_text, "(extra configuration)")
    return p.finish()


def parse_text(text: str, path: str = "(text)") -> RuleSet:
    """Parse one configuration text (tests, `--cf` lines)."""
    p = Parser()
    p.parse_text(text, path)
    return p.finish()


class Parser:
    """Mail::SpamAssassin::Conf::Parser, for the commands postier uses."""

    def __init__(self, lang: str = "C"):
        self.rs = RuleSet()
        self.lang = lang
        self.path = "(no file)"
        self.lineno = 0
        self._current_line = ""

    # -- diagnostics
    def warn(self, msg: str, path: str | None = None, line: int | None = None) -> None:
        path = self.path if path is None else path
        line = self.lineno if line is None else line
        self.rs.warnings.append(f"{path}, line {line}: {msg}")

    # -- input
    def parse_file(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            self.rs.warnings.append(f"{path}: config: cannot open \"{path}\": {e.strerror}")
            return
        self.rs.files.append(path)
        self.parse_text(data.decode("latin-1"), path)

    def parse_text(self, text: str, path: str) -> None:
        self.path = path
        self.lineno = 0
        if_stack: list[dict] = []
        skip = False
        for raw in text.split("\n"):
            self.lineno += 1
            line = raw
            if "#" in line:
                line = re.sub(r"(?<!\\)#.*$", "", line)
                line = line.replace("\\#", "#")
            line = line.strip(" \t\r\n\f\v")
            if not line:
                continue
            if line.startswith("lang"):
                m = re.match(r"^lang\s+(\S+)\s+", line)
                if m:
                    if not re.match("^" + re.escape(m.group(1)), self.lang, re.I):
                        continue
                    line = line[m.end():]
            parts = re.split(r"\s+", line, maxsplit=1)
            key = parts[0].lower().replace("-", "_")
            value = parts[1] if len(parts) > 1 else ""
            self._current_line = line
            if key == "endif":
                if value:
                    self.warn(f"config: '{key}' must be standalone")
                    continue
                if not if_stack:
                    self.warn(f"config: missing starting 'if' for '{key}'")
                    continue
                skip = if_stack.pop()["skip"]
                continue
            if key in ("if", "ifplugin"):
                if not value:
                    self.warn(f"config: missing '{key}' condition")
                    continue
                cond = value if key == "if" else f"plugin ({value})"
                ok = self._conditional(cond)
                if_stack.append({"skip": skip, "line": self.lineno, "type": key})
                if not ok:
                    skip = True
                continue
            if key == "else":
                if value:
                    self.warn(f"config: '{key}' must be standalone")
                    continue
                if not if_stack:
                    self.warn(f"config: '{key}' missing starting if")
                    continue
                skip = True if any(e["skip"] for e in if_stack) else not skip
                continue
            if key == "include":
                if not value:
                    self.warn(f"config: missing '{key}' value")
                    continue
                inc = value if os.path.isabs(value) else os.path.join(os.path.dirname(path), value)
                if skip:
                    continue
                saved = (self.path, self.lineno)
                self.parse_file(inc)
                self.path, self.lineno = saved
                continue
            if skip:
                continue
            if key == "require_version":
                if not value:
                    self.warn(f"config: missing '{key}' value")
                    continue
                if value != "@@VERSION@@" and value != SA_VERSION:
                    self.warn(f"config: configuration file '{path}' requires version {value} of "
                              f"SpamAssassin, but this is code version {SA_VERSION}. Skipping this file.")
                    skip = True
                continue
            err = self._command(key, value)
            if err is not None:
                self.warn(f"{err} in {path} (line {self.lineno}): {line}")
        for e in if_stack:
            self.warn(f"config: unclosed '{e['type']}' found in {path} (line {e['line']})",
                      line=e["line"])

    # -- if / ifplugin
    def _conditional(self, value: str) -> bool:
        tokens = ARITH_LEXER.findall(value)
        out: list[str] = []
        for tok in tokens:
            if tok in ("(", ")"):
                out.append(tok)
            elif tok == "!":
                out.append(" not ")
            elif tok == "&&":
                out.append(" and ")
            elif tok == "||":
                out.append(" or ")
            elif tok in ("plugin", "can", "has"):
                out.append(f"_{tok}")
            elif tok == "version":
                out.append(SA_VERSION)
            elif tok == "perl_version":
                out.append(PERL_VERSION)
            elif tok == "local_tests_only":
                out.append("1")
            elif re.fullmatch(r"(?:\W{1,5}|[+-]?\d+(?:\.\d+)?)", tok):
                out.append(tok)
            elif re.fullmatch(r"\w[\w:]+", tok):
                if re.fullmatch(r"(?:\w+::){0,10}\w+", tok):
                    out.append(repr(_PLUGIN_RENAMES.get(tok, tok)))
                else:
                    self.warn(f"config: not allowed value '{tok}' in {self.path} (line {self.lineno})")
                    return False
            else:
                self.warn(f"config: unparseable value '{tok}' in {self.path} (line {self.lineno})")
                return False
        expr = " ".join(out)
        plugins = self.rs.plugins

        def _plugin(name: str) -> bool:
            return name == "Mail::SpamAssassin::Plugin::RaciallyCharged" or name in plugins

        def _can(method: str) -> bool:
            mod, _, meth = method.rpartition("::")
            if not mod:
                self.warn(f"config: bad 'if' line, cannot find '::' in can({method}) "
                          f"in {self.path} (line {self.lineno})")
                return False
            if mod.startswith("Mail::SpamAssassin::Plugin::") and mod not in plugins:
                return False
            return meth in _CAN_TRUE.get(mod, ())

        try:
            return bool(eval(expr, {"__builtins__": {}},  # noqa: S307 - tokens are vetted above
                             {"_plugin": _plugin, "_can": _can, "_has": _can}))
        except Exception as e:  # noqa: BLE001 - any malformed conditional
            self.warn(f"config: error parsing conditional in {self.path} (line {self.lineno}): "
                      f"{value} ({e})")
            return False

    # -- commands: return None when accepted, else the error text
    def _command(self, key: str, value: str) -> str | None:
        rs = self.rs
        if key in ("header", "body", "rawbody", "uri", "full", "meta", "mimeheader"):
            return self._rule_command(key, value)
        if key == "score":
            return self._score(value)
        if key == "describe":
            m = re.match(r"^(\S+)\s+(.*)$", value, re.S)
            if not m:
                return "config: missing 'describe' value" if not value else None
            rs.descriptions[m.group(1)] = m.group(2)
            return None
        if key == "tflags":
            m = re.match(r"^(\S+)(?:\s+(.*))?$", value, re.S)
            if not m:
                return "config: missing 'tflags' value"
            rs.tflags[m.group(1)] = m.group(2) or ""
            return None
        if key == "priority":
            parts = value.split(None, 1)
            if len(parts) < 2:
                return "config: missing 'priority' value"
            if not RULENAME_RE.match(parts[0]) or not re.fullmatch(r"-?\d+", parts[1]):
                return "config: invalid 'priority' value"
            rs.priority[parts[0]] = int(parts[1])
            return None
        if key == "reuse":
            m = re.search(r"\s*(\w+)(?:\s+(?:\w+(?:\s+\w+)*))?\s*$", value, re.A)
            if not m:
                return "config: invalid 'reuse' value"
            if m.group(1) not in rs.rules:
                self._add_rule(Rule(m.group(1), EMPTY, "", self.path, self.lineno))
            return None
        if key in ("replace_tag", "replace_pre", "replace_inter", "replace_post"):
            m = re.match(r"^(\S+)\s+(.*)$", value, re.S)
            if not m:
                return f"config: missing '{key}' value"
            getattr(rs, key)[m.group(1)] = m.group(2)
            return None
        if key == "replace_rules":
            if not value:
                return "config: missing 'replace_rules' value"
            rs.replace_rules.update(value.split())
            return None
        if key in ("replace_start", "replace_end"):
            if not value:
                return f"config: missing '{key}' value"
            setattr(rs, key, value)
            return None
        if key in ("loadplugin", "tryplugin"):
            if not value:
                return f"config: missing '{key}' value"
            name = value.split()[0]
            rs.plugins.add(_PLUGIN_RENAMES.get(name, name))
            return None
        if key in ("required_score", "required_hits"):
            try:
                rs.required_score = float(value)
            except ValueError:
                return f"config: invalid '{key}' value"
            return None
        if key == "clear_util_rb":
            for k in ("util_rb_tld", "util_rb_2tld", "util_rb_3tld"):
                rs.settings.pop(k, None)
            return None
        if key in KNOWN_SETTINGS or re.fullmatch(r"bayes_stopword_[a-z]{2}", key):
            rs.settings.setdefault(key, []).append(value)
            return None
        return "config: failed to parse line"

    def _score(self, value: str) -> str | None:
        parts = value.split()
        if len(parts) not in (2, 5):
            return "config: missing 'score' value"
        name, scores = parts[0], parts[1:]
        relative = False
        vals = []
        for s in scores:
            m = re.fullmatch(r"\((-?\d+(?:\.\d+)?)\)", s)
            if m:
                relative = True
                s = m.group(1)
            if not re.fullmatch(r"-?\d+(?:\.\d+)?", s):
                return "config: invalid 'score' value"
            vals.append(float(s))
        if relative and name not in self.rs.scores:
            return "config: invalid 'score' value"
        if len(vals) == 1:
            vals = vals * 4
        if relative:
            old = self.rs.scores[name]
            vals = [old[i] + vals[i] for i in range(4)]
        self.rs.scores[name] = vals
        return None

    def _rule_command(self, key: str, value: str) -> str | None:
        m = re.match(r"^(\S+)\s+", value)
        if not m:
            return f"config: invalid '{key}' value" if value else f"config: missing '{key}' value"
        name = m.group(1)
        text = value[m.end():]
        if not text:
            return f"config: missing '{key}' value"
        if key == "meta" and re.search(r"\*\s*\*", text):
            return "config: invalid 'meta' value"
        if key == "mimeheader":
            if not RULENAME_RE.match(name):
                return "config: invalid 'mimeheader' value"
            mm = _MIMEHEADER_RE.match(text)
            if not mm:
                return "config: invalid 'mimeheader' value"
            hdr, op, pat = mm.group(1), mm.group(2), mm.group(3)
            if hdr.endswith(":"):
                hdr = hdr[:-1]
            if_unset = ""
            um = _IF_UNSET_RE.search(pat)
            if um:
                if_unset = um.group(1)
                pat = pat[:um.start()]
            rule = Rule(name, MIMEHEADER, text, self.path, self.lineno, regex=pat, header=hdr,
                        negate=op == "!~", if_unset=if_unset)
            if not self._check_regex(rule, pat):
                return "config: invalid 'mimeheader' value"
            self._add_rule(rule)
            return None
        kind = {"header": HEADER, "body": BODY, "rawbody": RAWBODY, "uri": URI, "full": FULL,
                "meta": META}[key]
        if key in ("header", "body", "rawbody", "full"):
            em = re.match(r"^(rbl)?eval:(.*)$", text, re.S) if key == "header" else \
                re.match(r"^()eval:(.*)$", text, re.S)
            if em:
                fn = em.group(2)
                if not re.match(r"^\w+\(.*\)$", fn, re.S | re.A):
                    return f"config: invalid '{key}' value"
                ekind = {"header": HEAD_EVAL, "body": BODY_EVAL, "rawbody": RAWBODY_EVAL,
                         "full": FULL_EVAL}[key]
                if key == "header" and re.match(r"^check_(?:rbl|dns)", fn):
                    ekind = RBL_EVAL
                self._add_eval(name, fn, ekind)
                return None
        rule = Rule(name, kind, text, self.path, self.lineno)
        if kind == HEADER:
            if text.startswith("exists:"):
                hdr = text[7:]
                if not re.fullmatch(r"[\w.-]+:?", hdr, re.A):
                    self.warn(f"config: invalid head test {name} header: {hdr}")
                    return None
                rule.header = hdr.rstrip(":")
                rule.exists = True
            else:
                hm = _HEADER_TEST_RE.match(text)
                if not hm:
                    self.warn(f"config: invalid head test {name}: {text}")
                    return None
                hdr, op, pat = hm.group(1), hm.group(2), hm.group(3)
                if hdr.endswith(":"):
                    hdr = hdr[:-1]
                if _HEADER_MOD_OK.search(hdr):
                    self.warn(f"config: invalid header modifier for {name}: {hdr}")
                    return None
                um = _IF_UNSET_RE.search(pat)
                if um:
                    rule.if_unset = um.group(1)
                    pat = pat[:um.start()]
                rule.header, rule.negate, rule.regex = hdr, op == "!~", pat
                if not self._check_regex(rule, pat):
                    return None
        elif kind == META:
            if not self._meta_valid(name, text):
                return None
        else:
            rule.regex = text
            if not self._check_regex(rule, text):
                return None
        self._add_rule(rule)
        return None

    def _add_eval(self, name: str, fn: str, kind: str) -> None:
        m = re.match(r"^(\w+)\((.*?)\)$", fn, re.S | re.A)
        args = pack_eval_args(m.group(2)) if m else None
        rule = Rule(name, kind, fn, self.path, self.lineno)
        if m is None or args is None:
            self.warn(f"syntax error for eval function {name}: {fn}")
            return
        rule.function, rule.args = m.group(1), args
        self._add_rule(rule)

    def _check_regex(self, rule: Rule, regex: str) -> bool:
        from postier.content.spam import perlre
        if not RULENAME_RE.match(rule.name):
            self.warn(f"config: error: rule '{rule.name}' has invalid characters "
                      "(not Alphanumeric + Underscore + starting with a non-digit)")
            return False
        try:
            perlre.split_delimited(regex)
        except perlre.PerlRegexError as e:
            self.warn(f"config: invalid regexp for {rule.name} '{regex}': {e}")
            return False
        return True

    def _meta_valid(self, name: str, rule: str) -> bool:
        if re.search(r"(?:::|->|[$@%;{}])", rule):
            self.warn(f"config: invalid meta {name} rule: {_shown(rule)}")
            return False
        rule = META_RULES_MATCHING_RE.sub(" 0 ", rule)
        for tok in ARITH_LEXER.findall(rule):
            if RULENAME_RE.match(tok):
                continue
            if re.fullmatch(r"\d+(?:\.\d+)?|[!-/:-@\[-`{-~]{1,2}", tok):
                continue
            self.warn(f"config: invalid meta {name} token: {tok}")
            return False
        from postier.content.spam import meta as metamod
        try:
            metamod.check_expression(rule)
        except metamod.MetaError as e:
            self.warn(f"config: invalid expression for rule {name}: \"{_shown(rule)}\": {e}")
            return False
        return True

    def _add_rule(self, rule: Rule) -> None:
        if not RULENAME_RE.match(rule.name):
            self.warn(f"config: error: rule '{rule.name}' has invalid characters "
                      "(not Alphanumeric + Underscore + starting with a non-digit)")
            return
        self.rs.rules[rule.name] = rule
        self.rs.priority.setdefault(rule.name, 0)

    # -- end of parsing
    def finish(self) -> RuleSet:
        rs = self.rs
        # Parser::fix_tests: default scores
        for name in rs.rules:
            if name not in rs.scores:
                s = 0.01 if name.startswith("T_") else 1.0
                if rs.has_flag(name, "nice"):
                    s = -s
                rs.scores[name] = [s] * 4
        # ReplaceTags (finish_parsing_end)
        if "Mail::SpamAssassin::Plugin::ReplaceTags" in rs.plugins:
            for name in sorted(rs.replace_rules):
                rule = rs.rules.get(name)
                if rule is None or rule.kind not in (HEADER, BODY, RAWBODY, URI, FULL) or \
                        rule.exists or not rule.regex:
                    continue
                rule.regex = replace_tags(rs, rule.regex)
        return rs


def pack_eval_args(args: str) -> list[str] | None:
    """Parser::pack_eval_args: quoted strings, bare words, numbers; None on error."""
    if re.fullmatch(r"\s+", args):
        return []
    out = []
    while True:
        m = _EVAL_ARGS_RE.match(args)
        if not m or (m.end() == 0 and args):
            break
        out.append(m.group(2) if m.group(2) is not None else m.group(3))
        args = args[m.end():]
        if not args:
            break
    return out if args == "" else None


def replace_tags(rs: RuleSet, regex: str) -> str:
    """Plugin::ReplaceTags on one delimited regex; the result is delimited
    again with the original modifiers."""
    from postier.content.spam import perlre
    try:
        pat, mods = perlre.split_delimited(regex)
    except perlre.PerlRegexError:
        return regex
    start, end = re.escape(rs.replace_start), re.escape(rs.replace_end)
    orig = pat
    passes = 0
    while True:
        again = False
        pre_name = post_name = inter_name = None
        m = re.search(start + "pre (.+?)" + end, pat)
        if m:
            pre_name = m.group(1)
            pat = pat[:m.start()] + pat[m.end():]
        m = re.search(start + "post (.+?)" + end, pat)
        if m:
            post_name = m.group(1)
            pat = pat[:m.start()] + pat[m.end():]
        m = re.search(start + "inter (.+?)" + end, pat)
        if m:
            inter_name = m.group(1)
            pat = pat[:m.start()] + pat[m.end():]
        parts = re.split(r"(<[^<>]+>)", pat)
        while parts and parts[-1] == "":        # Perl's split drops trailing empty fields
            parts.pop()
        if pre_name and rs.replace_pre.get(pre_name):
            pre = rs.replace_pre[pre_name]
            parts = [re.sub("(" + start + ".+?" + end + ")", lambda mm, pre=pre: pre + mm.group(1), p,
                              count=1)
                     for p in parts]
        if post_name and rs.replace_post.get(post_name):
            post = rs.replace_post[post_name]
            parts = [re.sub("(" + start + ".+?" + end + ")", lambda mm, post=post: mm.group(1) + post, p)
                     for p in parts]
        if inter_name and rs.replace_inter.get(inter_name):
            inter = rs.replace_inter[inter_name]
            parts = [inter if p == "" else p for p in parts]
        for i, p in enumerate(parts):
            m = re.search(start + "(.+?)" + end, p)
            if m:
                tag = m.group(1)
                rep = rs.replace_tag.get(tag)
                if rep and rep != "0":
                    parts[i] = re.sub(start + re.escape(tag) + end, lambda _m, rep=rep: rep, p)
                    if re.search(r"<[^>]+>", rep):
                        again = True
        pat = "".join(parts)
        passes += 1
        if not (again and passes <= 5):
            break
    if pat == orig:
        return regex
    return perlre.join_delimited(pat, mods)
