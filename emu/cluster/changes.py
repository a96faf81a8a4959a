"""What one change of the store brings about: pods to create, delete or update, what
kubectl prints for each object, the statuses that changed and the events."""

from __future__ import annotations

from dataclasses import dataclass, field

from emu.controllers.owned import Event
from emu.model.objects import Pod


@dataclass
class Changes:
    create: list[Pod] = field(default_factory=list)
    delete: list[Pod] = field(default_factory=list)
    update: list[Pod] = field(default_factory=list)  # pods whose labels/annotations changed
    results: list[tuple[str, str, str, str]] = field(default_factory=list)  # (kind, namespace, name, verb) as kubectl prints
    statuses: list[tuple[str, str]] = field(default_factory=list)  # (kind, key) whose status changed
    events: list[Event] = field(default_factory=list)

    def merge(self, other: Changes) -> None:
        self.create += other.create
        self.delete += other.delete
        self.update += other.update
        self.results += other.results
        self.statuses += [s for s in other.statuses if s not in self.statuses]
        self.events += other.events

    def net(self) -> Changes:
        """A pod created and deleted within one change never reaches the runtime."""
        made = {id(p) for p in self.create}
        both = {id(p) for p in self.delete if id(p) in made}
        if both:
            self.create = [p for p in self.create if id(p) not in both]
            self.delete = [p for p in self.delete if id(p) not in both]
        return self
