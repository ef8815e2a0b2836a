"""docs/index.md, the docs site's home: the README without its "Where to read on" (the site's
navigation is that), its links made relative to docs/. `make docs` writes it; a test keeps it
equal to what this makes."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTE = "<!-- Generated from README.md by `make docs`: edit README.md. -->\n"


def home(readme: str) -> str:
    text = readme.split("## Where to read on")[0].rstrip() + "\n"
    text = text.replace("](docs/", "](")
    return NOTE + text.replace(
        "Licence: Apache-2.0 ([LICENSE](LICENSE)). Changes:\n[CHANGELOG.md](CHANGELOG.md).",
        "Licence: Apache-2.0 (`LICENSE` in the repository). Changes: `CHANGELOG.md`.",
    )


if __name__ == "__main__":
    (ROOT / "docs" / "index.md").write_text(home((ROOT / "README.md").read_text()))
