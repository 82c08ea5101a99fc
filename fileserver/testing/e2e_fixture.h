// What the file server's end-to-end tests (fileserver/e2e_*_test.cc) share
// on top of ServerProcess and HttpClient: starting a server or connecting
// to one with the failure reported, the clean-exit check, a body checked
// against the pattern as it streams in, and SharedServerTest, the fixture
// of a suite whose tests all talk to one server.  Failures are reported
// through gtest, with the server's Diagnostics().
//
// Thread-safety: for the test's own thread, as gtest assertions are.
#ifndef KQIO_FILESERVER_TESTING_E2E_FIXTURE_H_
#define KQIO_FILESERVER_TESTING_E2E_FIXTURE_H_

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fileserver/testing/http_client.h"
#include "fileserver/testing/server_process.h"
#include "fileserver/testing/test_files.h"
#include "gtest/gtest.h"

namespace kqio {
namespace fileserver {
namespace testing {

// "exit N", or why there is no exit code, for failure messages.
std::string DescribeExit(const absl::StatusOr<int>& exit);

// Sends `signal` to `server` and expects it to exit 0 within `timeout`.
void ExpectCleanExit(ServerProcess& server, int signal = SIGTERM,
                     absl::Duration timeout = absl::Seconds(60));

// ServerProcess::Start(); null, and a failure, if the server did not start.
std::unique_ptr<ServerProcess> StartServerOrFail(std::vector<std::string> flags);

// A connection to `server` on 127.0.0.1; null, and a failure, if refused.
std::unique_ptr<HttpClient> ConnectOrFail(const ServerProcess& server,
                                          const ConnectOptions& options = {});

// Success if GET `target` on `client` answers with `body`.
::testing::AssertionResult BodyIs(HttpClient& client, absl::string_view target,
                                  absl::string_view body);

// Options that feed the response body to `verifier` (which must outlive
// them) instead of keeping it.
ReadOptions FeedBodyTo(PatternVerifier& verifier);

// A fixture for suites that share one server: SetUpTestSuite() builds the
// root and calls StartSharedServer(); each test fails at once if the server
// did not start and, afterwards, if it is no longer running; at the end of
// the suite it must exit 0 on SIGTERM (under ASan that also means no leak).
class SharedServerTest : public ::testing::Test {
 protected:
  // Starts the server on `root` with `flags` ("--root" is added), unless
  // `root_ready` (the outcome of building the root) is an error.
  static void StartSharedServer(const absl::Status& root_ready,
                                const std::string& root,
                                std::vector<std::string> flags);
  static void TearDownTestSuite();

  void SetUp() override;
  void TearDown() override;

  // A connection to the shared server; null, and a failure, if refused.
  static std::unique_ptr<HttpClient> Connect() { return ConnectOrFail(*server_); }

  static std::string* const root_;
  static std::string* const setup_error_;
  static ServerProcess* server_;
};

}  // namespace testing
}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_TESTING_E2E_FIXTURE_H_
