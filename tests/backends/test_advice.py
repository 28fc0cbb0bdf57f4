from __future__ import annotations

import pytest

from backends.advice import filter_advice, is_destructive


@pytest.mark.parametrize(
    "advice",
    [
        "Run rm -rf /var/lib/nginx to reset the cache",
        "rm /var/log/app/*.log",
        "find /var/log -name '*.gz' -delete",
        "Delete the old log files in /var/log",
        "sudo mkfs.ext4 /dev/sdb1",
        "dd if=/dev/zero of=/dev/sda bs=1M",
        "shred -u /etc/app.conf",
        "setenforce 0",
        "Set SELINUX=disabled in /etc/selinux/config",
        "Disable SELinux to rule it out",
        "csrutil disable from recovery mode",
        "sudo spctl --master-disable",
        "Turn off the firewall temporarily",
        "systemctl stop firewalld",
        "ufw disable",
        "iptables -F",
        "chmod -R 777 /var/www",
        "kill -9 1",
        "kill pid 1 to restart everything",
        "sudo reboot",
        "Reboot the host",
        "shutdown -r now",
        "Restart the server",
        "echo b > /proc/sysrq-trigger",
    ],
)
def test_destructive_advice_is_recognised(advice: str) -> None:
    assert is_destructive(advice)


@pytest.mark.parametrize(
    "advice",
    [
        "Restart nginx: systemctl restart nginx",
        "Inspect the core dump: coredumpctl info 811",
        "Find the largest memory users: ps aux --sort=-rss | head",
        "Send kill -HUP 811 to reload the configuration",
        "Stop the hung worker: kill 12345",
        "List the firewall rules with iptables -L -n",
        "Check SELinux denials with ausearch -m avc",
        "Run iostat -x 1 to see the busiest device",
    ],
)
def test_safe_advice_is_kept(advice: str) -> None:
    assert not is_destructive(advice)


@pytest.mark.parametrize(
    "advice",
    [
        "sudo systemctl disable --now firewalld",
        "systemctl --now disable firewalld.service",
        "systemctl mask --now ufw",
        "Put SELinux in permissive mode",
        "Set SELinux to permissive while you test",
        "service iptables stop",
        "sudo service firewalld stop",
        "pkill -9 systemd",
        "killall -9 init",
        "pkill init",
        "kill -9 1",
    ],
)
def test_disabling_security_or_killing_pid_1_behind_options_is_recognised(advice: str) -> None:
    assert is_destructive(advice)


@pytest.mark.parametrize(
    "advice",
    [
        "systemctl status firewalld",
        "sudo systemctl restart firewalld",
        "journalctl -u nginx",
        "journalctl -u firewalld --since today",
        "service nginx stop",
        "service iptables status",
        "Check whether SELinux is in permissive mode with getenforce",
        "pkill -HUP nginx",
        "killall -9 php-fpm",
        "pkill -f systemd-resolved-helper",
        "kill -9 12345",
    ],
)
def test_inspecting_security_units_and_killing_ordinary_processes_is_kept(advice: str) -> None:
    assert not is_destructive(advice)


def test_filter_keeps_the_order_of_both_lists() -> None:
    kept, removed = filter_advice(["check dmesg", "rm -rf /", "check swap", "reboot"])
    assert kept == ["check dmesg", "check swap"]
    assert removed == ["rm -rf /", "reboot"]
