"""Is `kitctl render` a no-op? Answered with the standard library before the CLI framework loads.

A render with nothing changed imports typer, pydantic-settings, the licence
crypto and jinja2, verifies the licence and renders every template, only to
find the site directory already holds the result (≈ 0.5 s of CPU, 5 ms of it
rendering). After a render that succeeded, `remember` keeps a stamp in the
site's `.kitctl/`: a digest of everything the render read (the arguments, the
working directory, every `KITCTL_…` variable, the kit's code, templates and
version, the installed packages' directories, every file an argument, an
environment variable, site.toml or the recorded inputs name, and every entry
of the site directory) with the summary it printed and when the licence
expires. `answer` prints that summary again when the digest is the same and
the licence has not expired yet; at any doubt (stdin, an interrupted swap, an
unreadable entry, a very large directory) it answers None and the full
render runs and decides. Stat data (size, mtime and ctime in ns, inode) stand
for contents: an atomic replace or any write changes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable

from kitcore import __version__
from kitcore.sitedir import CACHE, LOCK, SiteDir, chosen_site_dir

if TYPE_CHECKING:
    from kitctl.render.api import RenderResult

STAMP = "render-stamp.json"  # in the site's .kitctl/
MAX_ENTRIES = 5000  # beyond this a directory walk costs more than it saves: the full render decides
ENV_PREFIX = "KITCTL_"
_last: dict[str, Any] | None = None  # what the render just done in this process printed (set by `rendered`)


def render(args: list[str], full: Callable[[list[str]], int]) -> int:
    """`kitctl render ARGS`: the stamp's answer when nothing changed, else `full(args)` and a new stamp."""
    global _last
    code = answer(args)
    if code is not None:
        return code
    _last = None  # only this render's summary may be stamped
    before = outside_inputs(args)
    code = full(args)
    if code == 0 and before is not None:
        remember(args, before)
    return code


def rendered(result: "RenderResult") -> None:
    """Note what a successful render printed, for `remember` (a licence in grace is never stamped)."""
    global _last
    licence = result.site.licence
    _last = None if licence.status != "valid" else {
        "summary": {**result.summary(), "changed": False, "secrets_created": []}, "exp": licence.claims.exp}


def answer(args: list[str]) -> int | None:
    """Print the unchanged render's output and return 0; None when the full render must decide."""
    site = stamped_site(args)
    if site is None:
        return None
    try:
        stamp = json.loads((site.cache / STAMP).read_text(encoding="utf-8"))
        if not isinstance(stamp, dict) or not stamp["at"] <= time.time() < stamp["exp"]:
            return None  # expired, or the clock went back past the render (a licence not valid yet is refused)
        key = stamp_key(args, site)
        if key is None or key != stamp["key"]:
            return None
        summary = {**stamp["summary"], "licence": {**stamp["summary"]["licence"],
                                                   "days_left": int(stamp["exp"] - time.time()) // 86400}}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    show(summary, args[1:2] == ["--json"])
    return 0


def remember(args: list[str], before: str) -> None:
    """Write the stamp for the render just done, unless an input outside the site dir changed meanwhile."""
    global _last
    noted, _last = _last, None
    site = stamped_site(args)
    if noted is None or site is None or outside_inputs(args) != before:
        return
    if noted["summary"]["site_dir"] != str(site.root.absolute()):
        return  # the render wrote another directory than the one found here
    try:
        site.cache.mkdir(mode=0o700, exist_ok=True)  # first: making it changes the site dir's own stat
        key = stamp_key(args, site)
        if key is None:
            return
        tmp = site.cache / (STAMP + ".tmp")
        tmp.write_text(json.dumps({"key": key, "at": time.time(), **noted}), encoding="utf-8")
        tmp.replace(site.cache / STAMP)
    except OSError:
        pass  # a stamp that cannot be written costs only speed


def show(summary: dict[str, Any], as_json: bool) -> None:
    """What `kitctl render` prints for an unchanged site (kitctl.cli.render), without rich."""
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        return
    from kitctl.console import styled

    lic = summary["licence"]
    print(f"{styled('unchanged', '32', sys.stdout)} {summary['site_dir']}  site {styled(summary['site_id'], '1', sys.stdout)}"
          f"  {summary['domain']}  tls={summary['tls']}")
    print(f"licence {lic['jti']} tier {lic['tier']} {styled(lic['status'], '32', sys.stdout)}, "
          f"{lic['days_left']} days left")


# -- the stamp ---------------------------------------------------------------

def stamped_site(args: list[str]) -> SiteDir | None:
    """The site dir these arguments render; None when they read stdin, ask for help, or name it twice."""
    if "--help" in args or "-" in args or "--licence=-" in args or os.environ.get(ENV_PREFIX + "LICENCE") == "-":
        return None
    if "--json" in args[2:]:  # maybe an option's value: only `render --json …` is surely the flag
        return None
    given = [a.split("=", 1)[1] if "=" in a else (args[i + 1] if i + 1 < len(args) else None)
             for i, a in enumerate(args) if a == "--site-dir" or a.startswith("--site-dir=")]
    if len(given) > 1 or given == [None]:
        return None
    return SiteDir(chosen_site_dir(given[0] if given else None))


def outside_inputs(args: list[str]) -> str | None:
    """Digest of what the render reads from outside the site dir (the site dir is `site_tree`'s)."""
    env = sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX))
    h = hashlib.sha256()
    same_render = args[:1] + args[2:] if args[1:2] == ["--json"] else args  # --json changes only the printing
    _feed(h, ["v1", __version__, sys.executable, sys.version, os.getcwd(), same_render, env])
    _feed(h, code_stats())
    site = stamped_site(args)  # the site dir itself is in the digest entry by entry (`site_tree`)
    skip = {site.root.absolute()} if site is not None else set()
    _feed(h, named_files([*_arg_values(same_render), *(v for _, v in env)], [Path.cwd()], skip))
    return h.hexdigest()


def stamp_key(args: list[str], site: SiteDir) -> str | None:
    """Digest of every input of the render; None when the site dir cannot be taken in at a glance."""
    outside = outside_inputs(args)
    tree = site_tree(site.root)
    if outside is None or tree is None:
        return None
    h = hashlib.sha256(outside.encode())
    _feed(h, tree)
    _feed(h, named_files(site_strings(site), [Path.cwd(), site.root]))
    _feed(h, plugin_images(site))
    return h.hexdigest()


def plugin_images(site: SiteDir) -> list[Any]:
    """The ids of the storefront and agent images whose plugin label the last render read: rebuilt under
    the same tag (`kitctl images build --plugin-wheel`), the full render runs and records their plugins."""
    from kitctl.render.image_plugins import inspected, read_refs

    found = read_refs(site.root)
    if found is None:
        return []
    host, refs = found
    images = inspected(host, refs)
    return [None] if images is None else sorted((ref, answer.get("Id")) for ref, answer in images.items())


def code_roots() -> list[Path]:
    """The kit's code, and its templates and rules where a checkout or a wheel keeps them."""
    import kitctl

    package = Path(kitctl.__file__).resolve().parent
    return [package, package.parent / "kitcore", package.parent / "plugins", package / "_templates",
            package / "_monitoring", package.parent / "templates", package.parent / "monitoring"]


def code_stats() -> list[Any]:
    """Every file under `code_roots`, and the directories packages are installed in (an install changes them)."""
    cwd = os.getcwd()  # (`python -m` puts it first; it is in the digest as the working directory already)
    found: list[Any] = [[p, _stat(Path(p))] for p in sys.path if p and p != cwd and os.path.isdir(p)]
    for root in code_roots():
        if root.is_dir():
            found.append(_walk(root, skip={"__pycache__"}, limit=MAX_ENTRIES))
    return found


def site_tree(root: Path) -> list[Any] | None:
    """Every entry of the site dir but kitctl's own notes; None if a swap was cut short or it is unreadable."""
    root = root.absolute()
    try:
        if any(n.startswith((f".{root.name}.old-", f".{root.name}.new-")) for n in os.listdir(root.parent)):
            return None  # the full render recovers the interrupted swap first
    except OSError:
        return [str(root), None]  # no parent yet: nothing rendered
    if not root.is_dir():
        return [str(root), None]
    return _walk(root, skip={CACHE}, limit=MAX_ENTRIES)


def site_strings(site: SiteDir) -> list[str]:
    """Strings site.toml and the recorded inputs hold (paths among them)."""
    found: list[str] = []
    try:
        if site.site_toml.is_file():
            import tomllib

            found += _strings(tomllib.loads(site.site_toml.read_text(encoding="utf-8")))
        if (site.root / LOCK).is_file():
            found += _strings(json.loads((site.root / LOCK).read_text(encoding="utf-8")).get("inputs"))
    except (OSError, ValueError, AttributeError):
        found.append("\0unreadable")
    return found


def named_files(strings: Iterable[str], bases: list[Path], skip: Collection[Path] = ()) -> list[Any]:
    """Stat of every path a string may name (after an optional `@`), from each base; missing ones too."""
    out = []
    for s in strings:
        if not s or len(s) > 4096 or "\0" in s or "\n" in s:
            continue
        s = s[1:] if s.startswith("@") else s
        for base in bases:
            path = base / s
            out.append(None if path in skip else _stat(path))
    return out


def _arg_values(args: list[str]) -> list[str]:
    return [part for a in args for part in (a.split("=", 1) if a.startswith("--") else [a])]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _walk(root: Path, skip: set[str], limit: int) -> list[Any] | None:
    out: list[Any] = [str(root), _stat(root)]
    stack = [root]
    try:
        while stack:
            with os.scandir(stack.pop()) as entries:
                for e in sorted(entries, key=lambda e: e.name):
                    if e.name in skip:
                        continue
                    out.append([e.path, _stat(Path(e.path))])
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    if len(out) > limit:
                        return None
    except OSError:
        return None
    return out


def _stat(path: Path) -> list[Any] | None:
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return [st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _feed(h: "hashlib._Hash", value: Any) -> None:
    h.update(json.dumps(value, default=str, ensure_ascii=False).encode())
    h.update(b"\n")

