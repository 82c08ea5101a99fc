"""@com_google_absl on Debian: prebuilt libraries, or the source package.

By default every `@com_google_absl//absl/<pkg>:<name>` label is a
cc_library that links Debian's prebuilt libabsl (libabsl-dev) through
pkg-config. ThreadSanitizer cannot see the locks inside that uninstrumented
code and reports false races, so with KQIO_ABSL_FROM_SOURCE=1 (set by
`--config=tsan` in .bazelrc) the repository is instead Debian's abseil source
package, built with Abseil's own BUILD files and thus with the sanitizer.
"""

load(":repositories.bzl", "cc_library_stanza", "pkg_config")

# Upstream labels, "<package under absl/>:<target>" or just "<package>".
# Add a line to expose another one.
ABSL_TARGETS = [
    "algorithm",
    "algorithm:container",
    "base",
    "base:core_headers",
    "cleanup",
    "container:btree",
    "container:fixed_array",
    "container:flat_hash_map",
    "container:flat_hash_set",
    "container:inlined_vector",
    "container:node_hash_map",
    "debugging:failure_signal_handler",
    "debugging:stacktrace",
    "debugging:symbolize",
    "flags:flag",
    "flags:parse",
    "flags:usage",
    "functional:any_invocable",
    "functional:bind_front",
    "functional:function_ref",
    "hash",
    "memory",
    "meta:type_traits",
    "numeric:bits",
    "numeric:int128",
    "random",
    "random:distributions",
    "status",
    "status:statusor",
    "strings",
    "strings:cord",
    "strings:str_format",
    "synchronization",
    "time",
    "types:optional",
    "types:span",
    "types:variant",
    "utility",
]

# Debian's pkg-config module is usually absl_<pkg>_<name> or absl_<name>;
# these are the exceptions.
_PC_MODULE_OVERRIDES = {
    "flags:flag": "absl_flags",
}

_SOURCE_HINT = """Abseil's Debian source package is needed for --config=tsan.
Run `./bazelw build --config=tsan //...` from the kqio checkout once: as root
it adds deb-src entries and runs apt-get update. Or add a deb-src entry for
your Debian mirror yourself, run apt-get update, and install dpkg-dev."""

def _split(target):
    pkg, _, name = target.partition(":")
    return pkg, name or pkg.split("/")[-1]

def _pc_module(repository_ctx, target):
    if target in _PC_MODULE_OVERRIDES:
        return _PC_MODULE_OVERRIDES[target]
    pkg, name = _split(target)
    candidates = ["absl_%s_%s" % (pkg.replace("/", "_"), name), "absl_" + name]
    for module in candidates:
        if repository_ctx.execute(["pkg-config", "--exists", module]).return_code == 0:
            return module
    fail("no pkg-config module for @com_google_absl//absl/%s (tried %s); add it to _PC_MODULE_OVERRIDES in %s, or install libabsl-dev" % (
        target,
        ", ".join(candidates),
        Label("//third_party:absl.bzl"),
    ))

def _prebuilt(repository_ctx):
    packages = {}
    for target in repository_ctx.attr.targets:
        pkg, name = _split(target)
        linkopts, defines = pkg_config(repository_ctx, [_pc_module(repository_ctx, target)])
        packages.setdefault(pkg, []).append(cc_library_stanza(name, linkopts, defines))
    for pkg, stanzas in packages.items():
        repository_ctx.file(
            "absl/%s/BUILD.bazel" % pkg,
            'package(default_visibility = ["//visibility:public"])\n' + "".join(stanzas),
        )
    repository_ctx.file("BUILD.bazel", "")

def _sh(repository_ctx, script, error):
    result = repository_ctx.execute(["sh", "-c", script], timeout = 600)
    if result.return_code != 0:
        fail("%s\n%s\n%s" % (error, (result.stdout + result.stderr).strip(), _SOURCE_HINT))
    return result.stdout.strip()

def _from_source(repository_ctx):
    env = repository_ctx.os.environ
    cache = env.get("KQIO_CACHE_DIR") or "%s/kqio" % (
        env.get("XDG_CACHE_HOME") or "%s/.cache" % env.get("HOME", "/tmp")
    )

    # The download is the only step that needs the network, so keep it in a
    # cache that outlives `bazel clean --expunge` and config switches.
    downloads = "%s/abseil-source" % cache
    dsc = _sh(repository_ctx, """
set -e
cache='{downloads}'
if ! ls "$cache"/abseil_*.dsc >/dev/null 2>&1; then
  mkdir -p "$(dirname "$cache")"
  tmp=$(mktemp -d "$cache.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get source --download-only abseil) >&2
  rm -rf "$cache" && mv "$tmp" "$cache"
fi
ls "$cache"/abseil_*.dsc | sort -V | tail -n 1
""".format(downloads = downloads), "Could not download Abseil's Debian source package.")

    if not repository_ctx.which("dpkg-source"):
        fail("dpkg-source not found (package dpkg-dev).\n" + _SOURCE_HINT)
    _sh(
        repository_ctx,
        "rm -rf src absl && dpkg-source --no-copy -x '%s' src >&2 && mv src/absl src/LICENSE . && rm -rf src" % dsc,
        "Could not unpack %s." % dsc,
    )
    repository_ctx.file("BUILD.bazel", 'exports_files(["LICENSE"])\n')

def _absl_repository_impl(repository_ctx):
    repository_ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % repository_ctx.name)
    if repository_ctx.os.environ.get("KQIO_ABSL_FROM_SOURCE", "0") not in ("", "0"):
        _from_source(repository_ctx)
    else:
        _prebuilt(repository_ctx)

absl_repository = repository_rule(
    implementation = _absl_repository_impl,
    doc = "Abseil under its upstream labels, from Debian (see module docstring).",
    attrs = {
        "targets": attr.string_list(
            default = ABSL_TARGETS,
            doc = "Labels to expose in prebuilt mode; the source build has all of them.",
        ),
    },
    environ = ["KQIO_ABSL_FROM_SOURCE", "KQIO_CACHE_DIR"],
)
