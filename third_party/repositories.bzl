"""Repository rules that map kqio's dependencies onto the local system.

Everything here works offline: libraries come from Debian packages (found
with pkg-config), Bazel's helper repositories from stand-ins in
third_party/bazel/. Paths are computed from Labels so the rules also work
when kqio is an external repository of another workspace.
"""

_INSTALL_HINT = "run ./bazelw from the kqio checkout once; it installs the Debian packages kqio needs"

def third_party_dir(repository_ctx):
    return repository_ctx.path(Label("//third_party:BUILD.bazel")).dirname

def _run(repository_ctx, args, error, **kwargs):
    result = repository_ctx.execute(args, **kwargs)
    if result.return_code != 0:
        fail("%s\n  command: %s\n  %s\n%s" % (
            error,
            " ".join([str(a) for a in args]),
            result.stderr.strip(),
            _INSTALL_HINT,
        ))
    return result.stdout

def _words(text):
    return [w for w in text.replace("\n", " ").replace("\t", " ").split(" ") if w]

def pkg_config(repository_ctx, modules):
    """Returns (linkopts, defines) for the given pkg-config modules."""
    if not repository_ctx.which("pkg-config"):
        fail("pkg-config not found; " + _INSTALL_HINT)
    libs = _words(_run(
        repository_ctx,
        ["pkg-config", "--libs"] + modules,
        "pkg-config modules %s not found" % modules,
    ))
    cflags = _words(_run(
        repository_ctx,
        ["pkg-config", "--cflags"] + modules,
        "pkg-config modules %s not found" % modules,
    ))

    # -I/-L are all system directories on Debian; only defines change code.
    defines = [f[2:] for f in cflags if f.startswith("-D")]
    return libs, defines

def cc_library_stanza(name, linkopts, defines = [], extra = ""):
    return """
cc_library(
    name = "{name}",
    defines = {defines},
    linkopts = {linkopts},{extra}
)
""".format(name = name, defines = repr(defines), linkopts = repr(linkopts), extra = extra)

def _pkg_config_repository_impl(repository_ctx):
    build = ['package(default_visibility = ["//visibility:public"])\n']
    extra = ""
    if repository_ctx.attr.linux_only:
        extra = '\n    target_compatible_with = ["@platforms//os:linux"],'
    for name, items in repository_ctx.attr.targets.items():
        flags = [i for i in items if i.startswith("-")]
        modules = [i for i in items if not i.startswith("-")]
        linkopts, defines = pkg_config(repository_ctx, modules) if modules else ([], [])
        build.append(cc_library_stanza(name, flags + linkopts, defines, extra))
    repository_ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % repository_ctx.name)
    repository_ctx.file("BUILD.bazel", "".join(build))

pkg_config_repository = repository_rule(
    implementation = _pkg_config_repository_impl,
    doc = """One cc_library per key of `targets`, linking the listed pkg-config
    modules; entries starting with "-" are linker flags used as they are.""",
    attrs = {
        "targets": attr.string_list_dict(mandatory = True),
        "linux_only": attr.bool(default = False),
    },
    environ = ["PKG_CONFIG_PATH"],
)

def _stub_repository_impl(repository_ctx):
    src = third_party_dir(repository_ctx).get_child("bazel").get_child(repository_ctx.attr.dir)
    for entry in src.readdir():
        if entry.basename != "WORKSPACE":
            repository_ctx.symlink(entry, entry.basename)
    repository_ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % repository_ctx.name)

stub_repository = repository_rule(
    implementation = _stub_repository_impl,
    doc = "A repository made of the files in third_party/bazel/<dir>.",
    attrs = {"dir": attr.string(mandatory = True)},
)

_WASM_CPUS = """
# Added by kqio: Abseil's BUILD files refer to these, Bazel 4's copy lacks them.
constraint_value(
    name = "wasm32",
    constraint_setting = ":cpu",
)

constraint_value(
    name = "wasm64",
    constraint_setting = ":cpu",
)
"""

def _platforms_repository_impl(repository_ctx):
    # Bazel's bundled @platforms lives in its install base, next to the
    # embedded @bazel_tools; the host platform and C++ toolchain use its
    # constraints, so extend it rather than replace it.
    tools = repository_ctx.path(Label("@bazel_tools//tools:BUILD")).dirname.dirname
    install_base = repository_ctx.path(
        _run(repository_ctx, ["readlink", "-f", str(tools)], "cannot resolve @bazel_tools").strip(),
    ).dirname
    bundled = install_base.get_child("platforms")
    if not bundled.exists:
        fail("Bazel's bundled platforms not found at %s" % bundled)
    for entry in bundled.readdir():
        if entry.basename != "cpu":
            repository_ctx.symlink(entry, entry.basename)
    cpu_build = repository_ctx.read(bundled.get_child("cpu").get_child("BUILD"))
    if '"wasm32"' not in cpu_build:
        cpu_build += _WASM_CPUS
    repository_ctx.file("cpu/BUILD", cpu_build)

platforms_repository = repository_rule(
    implementation = _platforms_repository_impl,
    doc = "Bazel's bundled @platforms plus the cpu values newer Abseil expects.",
)

def _system_headers_repository_impl(repository_ctx):
    # Header-only libraries have no pkg-config module on Debian: look for the
    # header where the compiler does, so a missing package fails here, with
    # the package to install, rather than as a compile error.
    header = repository_ctx.attr.header
    dirs = repository_ctx.attr.include_dirs
    if not [d for d in dirs if repository_ctx.path(d).get_child(header).exists]:
        fail("<%s> not found in %s: install Debian's %s; %s" % (
            header,
            ", ".join(dirs),
            repository_ctx.attr.package,
            _INSTALL_HINT,
        ))
    repository_ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % repository_ctx.name)
    repository_ctx.file("BUILD.bazel", 'package(default_visibility = ["//visibility:public"])\n' + cc_library_stanza(
        repository_ctx.name,
        repository_ctx.attr.linkopts,
        repository_ctx.attr.defines,
    ))

system_headers_repository = repository_rule(
    implementation = _system_headers_repository_impl,
    doc = """A header-only library installed by a Debian package: one
    cc_library named after the repository, carrying only `defines` and
    `linkopts` (the headers are on the compiler's default include path).""",
    attrs = {
        "header": attr.string(mandatory = True, doc = "a header the package installs"),
        "package": attr.string(mandatory = True, doc = "the Debian package, for the error message"),
        "include_dirs": attr.string_list(default = ["/usr/include", "/usr/local/include"]),
        "defines": attr.string_list(),
        "linkopts": attr.string_list(),
    },
)
