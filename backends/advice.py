"""Remove recommendations that destroy data or weaken the host's security.

In: the model's recommendations. Out: the ones kept and the ones removed. Nothing the model
answers is ever executed; this filter keeps an operator from copying a harmful command out of
an alert. It matches commands and plain-language advice: deleting files (`rm`, `find -delete`,
`shred`), formatting or overwriting disks (`mkfs`, `dd of=/dev/...`, `wipefs`), disabling
SELinux (or making it permissive), SIP, Gatekeeper or firewalls (`systemctl disable --now
firewalld`, `service iptables stop`), opening permissions to everyone (`chmod 777`), killing
pid 1 (`kill -9 1`, `pkill systemd`, `killall -9 init`) and rebooting or powering off the machine.

Pattern matching is deliberately broad: a harmless sentence that mentions a reboot is removed
too. It cannot recognise every obfuscated form of a dangerous command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["filter_advice", "is_destructive"]

_SECURITY = (
    r"selinux|apparmor|sip|system integrity protection|gatekeeper|firewall|firewalld|ufw"
    r"|iptables|nftables|antivirus|defender|auditd"
)
# Command-line options between a command and its verb or argument: `systemctl disable --now`.
_OPTIONS = r"(?:-\S+\s+)*"
_DESTRUCTIVE = re.compile(
    "|".join(
        (
            # deleting files and data
            r"(?<![\w-])rm\s+\S",
            r"\bfind\b[^\n]*\s-delete\b",
            r"\b(shred|wipefs|srm)\b",
            r"\btruncate\s+(-s\s*0|--size[= ]0)\b",
            r"\bdrop\s+(database|table|schema)\b",
            r"\b(delete|erase|wipe|purge)\s+(all\s+)?(the\s+)?(\S+\s+){0,2}"
            r"(files?|logs?|data|databases?|disks?|volumes?|partitions?|directory|directories)\b",
            # formatting or overwriting disks
            r"\bmkfs(\.\w+)?\b",
            r"\bdd\b[^\n]*\bof=/dev/",
            r">\s*/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk)\w*",
            r"\b(format|reformat)\s+(the\s+)?(disk|drive|partition|volume)\b",
            # weakening security
            r"\bsetenforce\s+(0|permissive)\b",
            r"\bselinux\s*=\s*(disabled|permissive)\b",
            r"\bcsrutil\s+disable\b",
            r"\bspctl\s+--master-disable\b",
            r"\bufw\s+disable\b",
            rf"\bsystemctl\s+{_OPTIONS}(stop|disable|mask)\s+{_OPTIONS}({_SECURITY})\b",
            rf"\bservice\s+({_SECURITY})\s+stop\b",
            r"\biptables\s+(-F|--flush)\b",
            r"\bnft\s+flush\s+ruleset\b",
            rf"\b(disable|turn\s+off|switch\s+off|deactivate|stop)\w*\s+(the\s+)?({_SECURITY})\b",
            rf"\b({_SECURITY})\s+(off|disabled)\b",
            r"\b(put|set|switch|change|move|run)\w*\s+(the\s+)?selinux\s+(\w+\s+){0,3}permissive\b",
            r"\bchmod\s+(-R\s+)?0?777\b",
            r"\bchmod\s+(-R\s+)?(a|o|ugo)\+rwx\b",
            # killing pid 1
            r"\bkill\s+(-\S+\s+)*-?1(?!\d)",
            rf"\bp?kill\w*\s+{_OPTIONS}(the\s+)?['\"]?"
            r"(pid\s*1\b|process\s+1\b|(init|systemd|launchd)(?![\w-]))",
            r"\bkillall5\b",
            # rebooting, powering off
            r"\b(reboot|poweroff|halt)\b",
            r"\bshutdown\s+(-\w+\s+)*(-[rhP]|now|\+\d+)",
            r"\binit\s+[06]\b",
            r"\bsystemctl\s+(reboot|poweroff|halt|kexec)\b",
            r"\b(restart|power[- ]?cycle)\s+(the\s+|this\s+|your\s+)?"
            r"(machine|host|server|computer|system|node|box)\b",
            r"\bsysrq-trigger\b",
        )
    ),
    re.IGNORECASE,
)


def is_destructive(advice: str) -> bool:
    """Return True when `advice` would destroy data or weaken security if followed."""
    return _DESTRUCTIVE.search(advice) is not None


def filter_advice(recommendations: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split `recommendations` into (kept, removed), each in the original order."""
    kept: list[str] = []
    removed: list[str] = []
    for item in recommendations:
        (removed if is_destructive(item) else kept).append(item)
    return kept, removed
