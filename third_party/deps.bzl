"""kqio's external repositories, for kqio's WORKSPACE and its consumers'.

    local_repository(name = "kqio", path = "...")
    load("@kqio//third_party:deps.bzl", "kqio_dependencies")
    kqio_dependencies()

A repository the calling WORKSPACE defined before this call is left alone,
so a consumer can bring its own Abseil, GoogleTest or Benchmark.
"""

load(":absl.bzl", "absl_repository")
load(":repositories.bzl", "pkg_config_repository", "platforms_repository", "stub_repository", "system_headers_repository")

def _maybe(rule, name, **kwargs):
    if not native.existing_rule(name):
        rule(name = name, **kwargs)

def kqio_dependencies():
    # Bazel 4 downloads these on demand; offline stand-ins instead.
    _maybe(stub_repository, name = "rules_cc", dir = "rules_cc")
    _maybe(stub_repository, name = "rules_java", dir = "rules_java")
    _maybe(stub_repository, name = "remote_coverage_tools", dir = "remote_coverage_tools")

    # Needed by Abseil's own BUILD files (the --config=tsan source build).
    _maybe(stub_repository, name = "bazel_skylib", dir = "bazel_skylib")
    _maybe(platforms_repository, name = "platforms")

    _maybe(absl_repository, name = "com_google_absl")

    # As upstream, gtest and gtest_main include gmock; gtest_main is gmock's
    # main(), which also initializes gtest.
    _maybe(
        pkg_config_repository,
        name = "com_google_googletest",
        targets = {
            "gtest": ["gmock", "gtest"],
            "gtest_main": ["gmock_main", "gmock", "gtest"],
        },
    )
    _maybe(
        pkg_config_repository,
        name = "com_github_google_benchmark",
        targets = {
            "benchmark": ["benchmark"],
            # Debian ships libbenchmark_main.a without a .pc file.
            "benchmark_main": ["-lbenchmark_main", "benchmark"],
        },
    )
    _maybe(pkg_config_repository, name = "liburing", targets = {"liburing": ["liburing"]}, linux_only = True)
    _maybe(pkg_config_repository, name = "libuv", targets = {"libuv": ["libuv"]})

    # Standalone Asio (libasio-dev), header-only; a peer in //bench only.
    _maybe(
        system_headers_repository,
        name = "asio",
        header = "asio.hpp",
        package = "libasio-dev",
        defines = ["ASIO_STANDALONE"],
        linkopts = ["-pthread"],
    )
