// chatserver --config FILE and --print-config: every option round-trips through the file
// format, the command line wins over the file, and a bad file is an error that names the file
// and the line (exit 2).
#include "tests/process/server_process.hpp"
#include "tests/support/line_client.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

using namespace chat::test;

namespace {

// A temporary folder for config files, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/chat-config-XXXXXX";
    if (!mkdtemp(name)) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `text` to a file called `name` here; returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    const auto file = path_ / name;
    std::ofstream(file) << text;
    return file.string();
  }

 private:
  std::filesystem::path path_;
};

// The options --help lists, without the ones that are not settings.
std::set<std::string> options_in_help() {
  auto [code, help] = run_to_exit({"--help"});
  REQUIRE(code == 0);
  std::set<std::string> names;
  const std::regex option(R"(--([a-z][a-z-]+))");
  for (std::sregex_iterator it(help.begin(), help.end(), option), end; it != end; ++it) names.insert((*it)[1]);
  for (const char* not_a_setting : {"help", "version", "config", "print-config", "hash-password"}) {
    names.erase(not_a_setting);
  }
  return names;
}

// The keys of a --print-config text ("name=value" lines; '#' starts a comment).
std::set<std::string> keys_of(const std::string& text) {
  std::set<std::string> keys;
  const std::regex line(R"((^|\n)([a-z][a-z-]+)=)");
  for (std::sregex_iterator it(text.begin(), text.end(), line), end; it != end; ++it) keys.insert((*it)[2]);
  return keys;
}

// A value for every option that differs from its default, as command-line arguments.
const std::vector<std::string> every_option_changed{
    "--bind", "127.0.0.2",          "--port", "15999",          "--max-clients", "77",
    "--max-line", "8KiB",           "--handshake-timeout", "7s", "--log-file", "/tmp/some chat.log",
    "--log-level", "debug",         "--trace",                  "--poll-interval", "250ms",
    "--probe", "epoll",             "--keepalive", "3s,1s,4",  "--ping-interval", "off",
    "--ping-timeout", "1.5s",       "--send-queue", "2MiB",     "--send-timeout", "9s",
    "--writers", "3",               "--max-rate", "12.5",       "--max-burst", "9",
    "--flood-grace", "2m",          "--max-per-ip", "0",        "--web", "off",
    "--allow", "10.0.0.0/8",        "--allow", "192.168.1.7",
    "--password-file", "/tmp/chat-config-test-room.pass", "--admin-password-file", "/tmp/chat-config-test-room.pass",
    "--web-root", "/tmp",           "--web-origin", "http://a.example:8080",
    "--web-origin", "https://b.example",
    "--db", "/tmp/some chat.db",    "--history", "20",          "--history-keep", "30d",
    "--resume-window", "5m",
    "--redis", "redis://127.0.0.1:6390/2", "--room", "lab", "--instance-timeout", "5s",
    "--tls-cert", "/tmp/chat-config-test-tls/cert.pem", "--tls-key", "/tmp/chat-config-test-tls/key.pem",
    "--tls-only",
};
// Options that exclude one of the list above: each is checked on its own.
const std::set<std::string> exclusive_options{"self-signed"};

}  // namespace

TEST_CASE("chatserver --print-config writes every option, and reading it back with --config gives the same settings",
          "[process][config]") {
  TempDir dir;
  // --password-file is read when the options are: a well-formed hash (of no password in
  // particular) where the list above says.
  std::ofstream("/tmp/chat-config-test-room.pass")
      << "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
  const auto options = options_in_help();
  REQUIRE(options.size() >= 20);
  // --tls-cert and --tls-key are read when the options are: a certificate made by
  // --self-signed (which --print-config makes as it parses).
  REQUIRE(run_to_exit({"--self-signed", "/tmp/chat-config-test-tls", "--print-config"}).first == 0);

  SECTION("the defaults") {
    auto [code, printed] = run_to_exit({"--print-config"});
    REQUIRE(code == 0);
    CHECK(keys_of(printed) == options);
    auto [again_code, again] = run_to_exit({"--config", dir.write("defaults.conf", printed), "--print-config"});
    CHECK(again_code == 0);
    CHECK(again == printed);
  }
  SECTION("a value other than the default for every option") {
    // Every option of --help is changed by the list above (a new option must be added to it).
    std::set<std::string> changed = exclusive_options;
    for (const auto& arg : every_option_changed) {
      if (arg.rfind("--", 0) == 0) changed.insert(arg.substr(2));
    }
    CHECK(changed == options);
    auto args = every_option_changed;
    args.push_back("--print-config");
    auto [code, printed] = run_to_exit(args);
    REQUIRE(code == 0);
    INFO(printed);
    CHECK(keys_of(printed) == options);
    for (const char* line : {"max-clients=77", "keepalive=\"3s,1s,4\"", "log-file=\"/tmp/some chat.log\"",
                             "trace=true", "probe=\"epoll\"", "max-rate=12.5", "ping-interval=\"off\""}) {
      INFO(line);
      CHECK(printed.find(std::string("\n") + line + "\n") != std::string::npos);
    }
    auto [again_code, again] = run_to_exit({"--config", dir.write("changed.conf", printed), "--print-config"});
    CHECK(again_code == 0);
    CHECK(again == printed);
  }
  SECTION("--self-signed, which excludes --tls-cert and --tls-key") {
    auto [code, printed] = run_to_exit({"--self-signed", "/tmp/chat-config-test-tls", "--print-config"});
    REQUIRE(code == 0);
    INFO(printed);
    CHECK(printed.find("\nself-signed=\"/tmp/chat-config-test-tls\"\n") != std::string::npos);
    auto [again_code, again] = run_to_exit({"--config", dir.write("tls.conf", printed), "--print-config"});
    CHECK(again_code == 0);
    CHECK(again == printed);
  }
}

TEST_CASE("chatserver --config: the command line wins over the file, and the file's settings take effect", "[process][config]") {
  TempDir dir;
  // The file asks for another port and one client at most; the command line (ServerProcess adds
  // --bind 127.0.0.1 --port 0) overrides the address, the file's max-clients stays.
  const auto file = dir.write("chat.conf",
                              "# a comment\n"
                              "[default]\n"
                              "bind = \"0.0.0.0\"\n"
                              "port = 1\n"
                              "max-clients = 1\n"
                              "keepalive = 5s, 1s, 2   # spaces after the commas are fine\n");
  auto [code, printed] = run_to_exit({"--config", file, "--max-clients", "9", "--print-config"});
  CHECK(code == 0);
  CHECK(printed.find("\nmax-clients=9\n") != std::string::npos);
  CHECK(printed.find("\nport=1\n") != std::string::npos);
  CHECK(printed.find("\nkeepalive=\"5s,1s,2\"\n") != std::string::npos);

  ServerProcess server({"--config", file});
  CHECK(server.port() != 1);
  LineClient first(server.port());
  REQUIRE(first.send_line("HELLO first"));
  REQUIRE(first.expect_line("WELCOME first", patience));
  LineClient second(server.port());
  CHECK(second.expect_line("BYE server-full", patience));
}

TEST_CASE("chatserver --config: a bad file is an error naming the file and the line, exit 2", "[process][config]") {
  TempDir dir;
  struct Case {
    const char* what;
    std::string text;
    int line;
    const char* says;
  };
  const std::vector<Case> cases{
      {"an unknown key", "port = 0\n\n# max clients\nmax-clientz = 5\n", 4, "unknown option 'max-clientz'"},
      {"a value out of range", "port = 0\nmax-clients = 0\n", 2, "max-clients"},
      {"a value that is not a number", "bind = \"127.0.0.1\"\nport = abc\n", 2, "--port"},
      {"a bad duration", "ping-interval = soon\n", 1, "not a duration"},
      {"a bad keepalive", "port = 0\nkeepalive = 1s,2s\n", 2, "IDLE,INTERVAL,COUNT"},
      {"a list where one value goes", "port = 1 2\n", 1, "must be in quotes"},
      {"a list with commas where one value goes", "port = 1,2\n", 1, "--port"},
      {"a key set twice", "port = 1\nlog-level = warn\nport = 2\n", 3, "first on line 1"},
      {"a section", "[server]\nport = 1\n", 1, "no sections"},
      {"an option that is not a setting", "print-config = true\n", 1, "not allowed in a configuration file"},
      {"a path with spaces, unquoted", "port = 0\nlog-file = /srv/chat logs/x.log\n", 2, "must be in quotes"},
      {"a '#' inside quotes", "log-file = \"/var/log/chat#1.log\"\n", 1, "read as a comment"},
      {"a flag with a comment after it", "# x\ntrace # on\nbogus # off\n", 3, "unknown option 'bogus'"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    const auto file = dir.write("bad.conf", c.text);
    auto [code, out] = run_to_exit({"--config", file});
    INFO(out);
    CHECK(code == 2);
    CHECK(out.find(file + ":" + std::to_string(c.line) + ": ") != std::string::npos);
    CHECK(out.find(c.says) != std::string::npos);
  }
  SECTION("a bad value on the command line is not blamed on the file") {
    auto [code, out] = run_to_exit({"--config", dir.write("good.conf", "max-clients = 5\n"), "--max-clients", "0"});
    CHECK(code == 2);
    CHECK(out.find("good.conf:") == std::string::npos);
    CHECK(out.find("--max-clients") != std::string::npos);
  }
  SECTION("a file that is not there") {
    auto [code, out] = run_to_exit({"--config", "/nonexistent-dir/chat.conf"});
    CHECK(code == 2);
    CHECK(out.find("/nonexistent-dir/chat.conf") != std::string::npos);
  }
}
