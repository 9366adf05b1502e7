"""Behaviours every matchmaker must show, written once (pytest).

Subclass :class:`MatchMakerConformance` and implement :meth:`make_matchmaker`;
give it ``conf`` and ``group`` with your options set::

    class TestMyMatchMaker(MatchMakerConformance):
        def make_matchmaker(self, conf, group):
            conf.register_opts(MyMatchMaker.options(), group=group)
            conf.set_override("my_option", "value", group=group)
            return MyMatchMaker(conf, group)

Each test gets fresh topics and a fresh cell group name.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from oslo_config import cfg

from rpccore.matchmaker import MatchMaker


class MatchMakerConformance:
    """Subclass and implement :meth:`make_matchmaker`."""

    #: Seconds a look-up through another matchmaker object may lag behind a
    #: registration (a matchmaker that caches look-ups sets its cache time).
    #: ``None``: another object never sees the change before its cache expires,
    #: so that check is left out.
    lookup_staleness: float | None = 0.0

    #: Whether register() adds hosts (False for read-only matchmakers such
    #: as static or ring, whose hosts come from configuration).
    writable: bool = True

    def make_matchmaker(self, conf: cfg.ConfigOpts, group: str) -> MatchMaker:
        """A matchmaker for ``group``, with no hosts known yet (when writable)."""
        raise NotImplementedError

    def configured_hosts(self, topic: str) -> list[str]:
        """For read-only matchmakers: the hosts the configuration gives ``topic``."""
        return []

    @pytest.fixture(autouse=True)
    def _track(self) -> Iterator[None]:
        self._made: list[MatchMaker] = []
        yield
        for matchmaker in self._made:
            matchmaker.close()

    def matchmaker(self, group: str | None = None) -> MatchMaker:
        conf = cfg.ConfigOpts()
        made = self.make_matchmaker(conf, group or f"cell:mm-{os.urandom(4).hex()}")
        self._made.append(made)
        return made

    @staticmethod
    def topic(label: str = "") -> str:
        return f"mm.{label}.{os.urandom(4).hex()}"

    def test_is_a_matchmaker(self) -> None:
        assert isinstance(self.matchmaker(), MatchMaker)

    def test_lookup_returns_a_list_of_strings(self) -> None:
        hosts = self.matchmaker().lookup(self.topic("any"))
        assert isinstance(hosts, list)
        assert all(isinstance(h, str) for h in hosts)

    def test_register_lookup_unregister(self) -> None:
        mm = self.matchmaker()
        topic = self.topic("reg")
        if not self.writable:
            assert sorted(mm.lookup(topic)) == sorted(self.configured_hosts(topic))
            return
        assert mm.lookup(topic) == []
        mm.register(topic, "127.0.0.2")
        mm.register(topic, "127.0.0.3:9600")
        mm.register(topic, "127.0.0.2")  # idempotent
        assert sorted(mm.lookup(topic)) == ["127.0.0.2", "127.0.0.3:9600"]
        mm.unregister(topic, "127.0.0.2")
        assert mm.lookup(topic) == ["127.0.0.3:9600"]
        mm.unregister(topic, "127.0.0.3:9600")
        mm.unregister(topic, "never-registered")
        assert mm.lookup(topic) == []

    def test_topics_with_any_characters_are_separate(self) -> None:
        if not self.writable:
            return
        mm = self.matchmaker()
        base = self.topic("chars")
        topics = [base, base + ".a", base + "*", base + ":a", base + "/a", base + " ä"]
        for i, topic in enumerate(topics):
            mm.register(topic, f"127.0.0.{i + 2}")
        for i, topic in enumerate(topics):
            assert mm.lookup(topic) == [f"127.0.0.{i + 2}"]

    def test_cells_are_separate(self) -> None:
        if not self.writable:
            return
        topic = self.topic("cells")
        one = self.matchmaker("cell:one-" + os.urandom(3).hex())
        two = self.matchmaker("cell:two-" + os.urandom(3).hex())
        one.register(topic, "127.0.0.2")
        assert two.lookup(topic) == []
        assert one.lookup(topic) == ["127.0.0.2"]

    def test_another_instance_of_the_cell_sees_registrations(self) -> None:
        # Servers and clients are separate processes: a registration must be
        # visible through a second matchmaker object of the same cell.
        if not self.writable or self.lookup_staleness is None:
            return
        group = f"cell:shared-{os.urandom(4).hex()}"
        topic = self.topic("shared")
        writer, reader = self.matchmaker(group), self.matchmaker(group)
        writer.register(topic, "127.0.0.5")
        assert reader.lookup(topic) == ["127.0.0.5"]  # nothing cached yet
        writer.unregister(topic, "127.0.0.5")
        end = time.monotonic() + self.lookup_staleness + 1.0
        while reader.lookup(topic) != [] and time.monotonic() < end:
            time.sleep(0.05)
        assert reader.lookup(topic) == []

    def test_cell_and_topic_boundaries_never_blur(self) -> None:
        if not self.writable:
            return
        tag = os.urandom(3).hex()
        one = self.matchmaker(f"cell:a-{tag}:x")
        two = self.matchmaker(f"cell:a-{tag}")
        one.register("b:c", "127.0.0.6")
        assert two.lookup("x:b:c") == [] and two.lookup("b:c") == []
        two.register("x:b:c%0A\n", "127.0.0.7")
        assert one.lookup("b:c") == ["127.0.0.6"]
        assert two.lookup("x:b:c%0A\n") == ["127.0.0.7"]

    def test_concurrent_use(self) -> None:
        mm = self.matchmaker()
        topic = self.topic("threads")
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(20):
                    if self.writable:
                        mm.register(topic, f"127.0.{n}.{i + 1}")
                    mm.lookup(topic)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors, errors[:3]
        if self.writable:
            assert len(mm.lookup(topic)) == 80

    def test_close_is_idempotent(self) -> None:
        mm = self.matchmaker()
        mm.close()
        mm.close()
