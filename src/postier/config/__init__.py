"""postier.config: main.cf / master.cf, the parameter registry, typed values.

Public API:

    load_config(config_dir=None) -> Config        read DIR/main.cf (master.cf on demand)
    resolve_config_dir(config_dir=None) -> str    argument, $POSTIER_CONFIG_DIR, $MAIL_CONFIG,
                                                  /etc/postier if it exists, else the built-in
                                                  default configuration (data/default/)
    Config.from_text(text, path="main.cf")        for tests
    cfg.get(name) / get_str / get_bool / get_int / get_size / get_time (seconds) / get_list
    cfg.raw(name), cfg.expand(text), cfg.source(name) -> (path, line) | None,
    cfg.is_default(name), cfg.validate(), cfg.check_names(), cfg.for_service(service)
    read_master_cf(path) -> list[Service]         master.cf with parsed -o overrides
    PARAMS: dict[str, Param]                      the registry (postier.config.params)
    split_list(value)                             Postfix list syntax with {} grouping

Which parameters are read: see postier.config.params; this package reads
whatever its callers ask for, plus the host-dependent defaults' inputs
(myhostname, mydomain, inet_interfaces, inet_protocols, mynetworks_style).
"""

from __future__ import annotations

from postier.config.maincf import (
    DEFAULT_CONFIG_DIR,
    Config,
    MacroError,
    MainCf,
    builtin_config_dir,
    defaults_config,
    edit_main_cf,
    load_config,
    mac_expand,
    parse_main_cf,
    postfix_names,
    read_main_cf,
    resolve_config_dir,
)
from postier.config.mastercf import Service, format_service, parse_master_cf, read_master_cf
from postier.config.params import PARAMS
from postier.config.registry import Param, split_list
from postier.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_DIR", "Config", "ConfigError", "MacroError", "MainCf", "PARAMS", "Param",
    "Service", "builtin_config_dir", "defaults_config", "edit_main_cf", "format_service",
    "load_config", "mac_expand", "parse_main_cf", "parse_master_cf", "postfix_names",
    "read_main_cf", "read_master_cf", "resolve_config_dir", "split_list",
]
