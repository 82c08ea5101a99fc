#include "fileserver/testing/e2e_fixture.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace kqio {
namespace fileserver {
namespace testing {

std::string DescribeExit(const absl::StatusOr<int>& exit) {
  return exit.ok() ? absl::StrCat("exit ", *exit) : exit.status().ToString();
}

void ExpectCleanExit(ServerProcess& server, int signal, absl::Duration timeout) {
  ASSERT_TRUE(server.Signal(signal).ok());
  absl::StatusOr<int> exit = server.Wait(timeout);
  EXPECT_TRUE(exit.ok() && *exit == 0)
      << DescribeExit(exit) << "\n" << server.Diagnostics();
}

std::unique_ptr<ServerProcess> StartServerOrFail(std::vector<std::string> flags) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(std::move(flags));
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    return nullptr;
  }
  return *std::move(server);
}

std::unique_ptr<HttpClient> ConnectOrFail(const ServerProcess& server,
                                          const ConnectOptions& options) {
  absl::StatusOr<std::unique_ptr<HttpClient>> client =
      HttpClient::Connect("127.0.0.1", server.port(), options);
  if (!client.ok()) {
    ADD_FAILURE() << client.status() << "\n" << server.Diagnostics();
    return nullptr;
  }
  return *std::move(client);
}

::testing::AssertionResult BodyIs(HttpClient& client, absl::string_view target,
                                  absl::string_view body) {
  absl::StatusOr<HttpResponse> r = client.Get(target);
  if (!r.ok()) return ::testing::AssertionFailure() << "GET " << target << ": " << r.status();
  if (r->body != body) {
    return ::testing::AssertionFailure()
           << "GET " << target << ": status " << r->status << ", body \""
           << r->body.substr(0, 200) << "\", not \"" << body << "\"";
  }
  return ::testing::AssertionSuccess();
}

ReadOptions FeedBodyTo(PatternVerifier& verifier) {
  ReadOptions options;
  options.body_sink = [&verifier](absl::string_view b) { verifier.Feed(b); };
  return options;
}

std::string* const SharedServerTest::root_ = new std::string;
std::string* const SharedServerTest::setup_error_ = new std::string;
ServerProcess* SharedServerTest::server_ = nullptr;

void SharedServerTest::StartSharedServer(const absl::Status& root_ready,
                                         const std::string& root,
                                         std::vector<std::string> flags) {
  if (!root_ready.ok()) {
    *setup_error_ = root_ready.ToString();
    return;
  }
  *root_ = root;
  flags.insert(flags.begin(), "--root=" + root);
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(std::move(flags));
  if (!server.ok()) {
    *setup_error_ = server.status().ToString();
    return;
  }
  server_ = server->release();
}

void SharedServerTest::TearDownTestSuite() {
  if (server_ == nullptr) return;
  ExpectCleanExit(*server_, SIGTERM);
  delete server_;
  server_ = nullptr;
}

void SharedServerTest::SetUp() {
  ASSERT_NE(server_, nullptr) << "the server did not start: " << *setup_error_;
}

void SharedServerTest::TearDown() {
  if (server_ == nullptr) return;  // SetUp() has failed the test
  absl::StatusOr<int> exit = server_->Wait(absl::ZeroDuration());
  EXPECT_TRUE(absl::IsDeadlineExceeded(exit.status()))
      << "the server is gone: " << DescribeExit(exit) << "\n"
      << server_->Diagnostics();
}

}  // namespace testing
}  // namespace fileserver
}  // namespace kqio
