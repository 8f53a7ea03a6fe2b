"""The released trainers, registered where they are defined: the class statement is the one place a name is written.

`nnunet_surgery.trainers.TRAINERS`, its `__all__`, the `nnUNet_extTrainer` shim and the demo's trainer
choices are all derived from `REGISTRY`. A trainer's name is public API (nnU-Net's results folders and
checkpoints carry it), so a registered name must never change. Subclasses of a registered trainer (say, a
user's `SurgeryTrainer_250epochs`) are not registered: only the decorated class is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["FAMILIES", "REGISTRY", "TrainerRegistry", "register"]

#: Trainer families, in the order `TrainerRegistry.classes` lists them.
FAMILIES = ("surgical", "baseline")

_Class = TypeVar("_Class", bound=type)


class TrainerRegistry:
    """Trainer classes by name, each in one of `FAMILIES`."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}
        self._families: dict[str, str] = {}

    def register(self, family: str) -> Callable[[_Class], _Class]:
        """Class decorator that registers the class under its `__name__`, in `family`.

        Raises:
            ValueError: `family` is not one of `FAMILIES`, or another class already has the name.
        """
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, but got {family!r}")

        def decorate(cls: _Class) -> _Class:
            name = cls.__name__
            if self._classes.get(name, cls) is not cls:
                raise ValueError(
                    f"trainer name {name!r} is registered already (by {self._classes[name].__module__}); "
                    f"expected a unique class name"
                )
            self._classes[name] = cls
            self._families[name] = family
            return cls

        return decorate

    def classes(self, family: str | None = None) -> tuple[type, ...]:
        """Registered classes, by family in `FAMILIES` order, then in registration (definition) order.

        Args:
            family: only this family's classes (None: all).

        Raises:
            ValueError: `family` is not None nor one of `FAMILIES`.
        """
        if family is not None and family not in FAMILIES:
            raise ValueError(f"family must be None or one of {', '.join(FAMILIES)}, but got {family!r}")
        families = FAMILIES if family is None else (family,)
        return tuple(
            cls for each in families for name, cls in self._classes.items() if self._families[name] == each
        )

    def names(self, family: str | None = None) -> tuple[str, ...]:
        """Names of `classes(family)`, in the same order."""
        return tuple(cls.__name__ for cls in self.classes(family))

    def family(self, cls: type) -> str:
        """Family of a registered class.

        Raises:
            KeyError: `cls` is not registered (a subclass of a registered class is not).
        """
        if self._classes.get(cls.__name__) is not cls:
            raise KeyError(
                f"cls must be a registered trainer class, but got {cls.__module__}.{cls.__qualname__}"
            )
        return self._families[cls.__name__]


#: The package's registry: `surgical.py` and `baselines.py` register into it.
REGISTRY = TrainerRegistry()
#: `@register("surgical")` / `@register("baseline")` on a trainer's class statement.
register = REGISTRY.register
