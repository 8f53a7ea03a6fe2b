"""pyproject.toml's hand-written package list matches the package folders, both ways.

`[tool.setuptools] packages` is listed by hand because `trainers/` (the folder `nnUNet_extTrainer` points
to) is shipped as `nnunet_surgery._ext_trainers` through `package-dir`. A subpackage missing from that list
is silently left out of a wheel (and of a non-editable install), while the tests, which import from the
working tree, still pass; a listed name without its folder breaks the build. So: every folder with an
`__init__.py` under `nnunet_surgery/` and under each `package-dir` target must be listed, every listed name
must resolve to such a folder, and no folder of Python modules may lack its `__init__.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: the test extra installs tomli
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs tomllib (3.11+) or tomli")

ROOT = Path(__file__).resolve().parents[1]
TOP_PACKAGE = "nnunet_surgery"


def _setuptools_config() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["tool"]["setuptools"]


def _package_dirs() -> dict[str, str]:
    return dict(_setuptools_config().get("package-dir", {}))


def _listed_packages() -> list[str]:
    return list(_setuptools_config()["packages"])


def _is_source_folder(folder: Path) -> bool:
    return folder.name != "__pycache__" and not folder.name.startswith(".")


def _package_folders(name: str, folder: Path) -> dict[str, Path]:
    """`name` -> `folder` and every subfolder with an `__init__.py` (recursively) -> its dotted name."""
    found = {}
    if (folder / "__init__.py").is_file():
        found[name] = folder
    for child in sorted(folder.iterdir()):
        if child.is_dir() and _is_source_folder(child):
            found.update(_package_folders(f"{name}.{child.name}", child))
    return found


def _expected_packages() -> dict[str, Path]:
    """Every package the source tree holds: `nnunet_surgery/...` and each package-dir mapping's folder."""
    packages = _package_folders(TOP_PACKAGE, ROOT / TOP_PACKAGE)
    for name, folder in _package_dirs().items():
        if name:  # "" would remap the root; this project does not use it
            packages.update(_package_folders(name, ROOT / folder))
    return packages


def _folder_of(package: str) -> Path:
    """Where setuptools looks for `package`: the longest package-dir prefix, else the dotted path."""
    mapping = _package_dirs()
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in mapping:
            return ROOT / mapping[prefix] / Path(*parts[cut:])
    return ROOT / Path(*parts)


def test_ext_trainers_folder_is_mapped_into_the_package():
    assert _package_dirs().get(f"{TOP_PACKAGE}._ext_trainers") == "trainers"
    assert (ROOT / "trainers" / "__init__.py").is_file()


def test_every_package_folder_is_listed_in_pyproject():
    missing = sorted(set(_expected_packages()) - set(_listed_packages()))
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_listed_package_is_a_package_folder():
    listed = _listed_packages()
    assert len(listed) == len(set(listed)), f"duplicate entries in packages: {sorted(listed)}"
    not_packages = sorted(name for name in listed if not (_folder_of(name) / "__init__.py").is_file())
    assert not not_packages, f"listed in pyproject.toml but no folder with __init__.py: {not_packages}"
    unknown = sorted(set(listed) - set(_expected_packages()))
    assert not unknown, f"listed in pyproject.toml but not under {TOP_PACKAGE}/ or package-dir: {unknown}"


def _source_folders(root: Path) -> list[Path]:
    """`root` and every folder below it, without caches and hidden folders."""
    below = (
        folder
        for folder in root.rglob("*")
        if folder.is_dir() and all(_is_source_folder(Path(part)) for part in folder.relative_to(root).parts)
    )
    return [root, *below]


def test_no_folder_of_modules_lacks_its_init():
    roots = [ROOT / TOP_PACKAGE, *(ROOT / folder for name, folder in _package_dirs().items() if name)]
    lacking = sorted(
        str(folder.relative_to(ROOT))
        for root in roots
        for folder in _source_folders(root)
        if any(folder.glob("*.py")) and not (folder / "__init__.py").is_file()
    )
    assert not lacking, f"folders of modules without __init__.py (left out of the wheel): {lacking}"
