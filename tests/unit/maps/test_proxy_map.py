"""proxy:TYPE:NAME opens the wrapped table (Postfix's proxymap shares one
open table; postier's tables are shared through the page cache already)."""

import pytest

from postier.errors import MapError
from postier.maps import clear_cache, open_map


def test_proxy_wraps_inner_table():
    clear_cache()
    m = open_map("proxy:inline:{ a=1, b=2 }")
    assert m.lookup("a") == "1"
    assert m.lookup("c") is None


def test_proxy_of_unsupported_type_names_the_type():
    with pytest.raises(MapError, match="unsupported dictionary type: ldap"):
        open_map("proxy:ldap:/etc/postier/ldap.cf", cache=False)
