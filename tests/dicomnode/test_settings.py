"""Node settings: AE titles (PS3.5 Table 6.2-1) and the destination address."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.dicomnode import Destination, NodeSettings, SendSyntax
from mammocad.dicomnode.settings import ae_title


def test_destination_parses_aet_host_port() -> None:
    destination = Destination.parse("ORTHANC@pacs.local:4242")
    assert (destination.ae_title, destination.host, destination.port) == (
        "ORTHANC",
        "pacs.local",
        4242,
    )
    assert destination.transfer_syntaxes == (SendSyntax.explicit, SendSyntax.implicit)
    assert str(destination) == "ORTHANC@pacs.local:4242"


def test_destination_accepts_bracketed_ipv6_and_syntax_choice() -> None:
    destination = Destination.parse("PACS@[::1]:104", transfer_syntaxes=(SendSyntax.implicit,))
    assert destination.host == "::1"
    assert [syntax.uid for syntax in destination.transfer_syntaxes] == ["1.2.840.10008.1.2"]


@pytest.mark.parametrize(
    "text", ["ORTHANC", "ORTHANC@pacs", "@pacs:4242", "ORTHANC@pacs:99999", "A\\B@h:1"]
)
def test_bad_destinations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"AET@host:port|TCP port|AE title"):
        Destination.parse(text)


@pytest.mark.parametrize("bad", ["", "   ", "SEVENTEEN_CHARS_X", "BACK\\SLASH", "TAB\tX"])
def test_ae_title_rules(bad: str) -> None:
    with pytest.raises(ValueError, match=r"PS3\.5"):
        ae_title(bad)
    assert ae_title("  MAMMOCAD ") == "MAMMOCAD"


def test_node_settings_normalise_and_check() -> None:
    settings = NodeSettings(allowed_calling_aets=frozenset({" CT1 ", "MG1"}), spool_dir=Path("s"))
    assert settings.allowed_calling_aets == {"CT1", "MG1"}
    with pytest.raises(ValueError, match="idle timeout"):
        NodeSettings(idle_timeout_s=0)
    with pytest.raises(ValueError, match="TCP port"):
        NodeSettings(port=70000)
