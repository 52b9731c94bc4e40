// common/cli: the "did you mean --max-clients?" answer to a misspelt option.
#include "common/cli.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using chat::cli::closest_names;
using chat::cli::edit_distance;

namespace {

const std::vector<std::string> server_options{"help",          "version",   "config",       "print-config",
                                              "bind",          "port",      "max-clients",  "max-line",
                                              "handshake-timeout", "ping-interval", "ping-timeout", "max-rate",
                                              "max-burst",     "max-per-ip", "keepalive",   "web",
                                              "web-root",      "web-origin"};

// A CLI::App with a few of chatserver's options, parsed from `args`; returns the error's exit
// code (0: parsed) and the unknown-option message, if any.
std::pair<int, std::string> parse(CLI::App& app, std::vector<std::string> args) {
  std::vector<const char*> argv{"prog"};
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return {e.get_exit_code(), chat::cli::unknown_option_message(app, e, "prog").value_or("")};
  }
  return {0, ""};
}

}  // namespace

TEST_CASE("edit_distance counts insertions, deletions, substitutions and swaps", "[cli]") {
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("port", "port") == 0);
  CHECK(edit_distance("", "port") == 4);
  CHECK(edit_distance("max-client", "max-clients") == 1);   // a letter missing
  CHECK(edit_distance("maxclients", "max-clients") == 1);   // the dash missing
  CHECK(edit_distance("ping-timout", "ping-timeout") == 1);
  CHECK(edit_distance("prot", "port") == 1);                // two neighbours swapped
  CHECK(edit_distance("bind", "find") == 1);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("max-line", "max-rate") == 3);
}

TEST_CASE("closest_names suggests close misspellings only", "[cli]") {
  using V = std::vector<std::string>;
  CHECK(closest_names(server_options, "max-client") == V{"max-clients"});
  CHECK(closest_names(server_options, "maxclients") == V{"max-clients"});
  CHECK(closest_names(server_options, "ping-timout") == V{"ping-timeout"});
  CHECK(closest_names(server_options, "ping-intervall") == V{"ping-interval"});
  CHECK(closest_names(server_options, "prot") == V{"port"});
  CHECK(closest_names(server_options, "Port") == V{"port"});          // case is forgiven
  CHECK(closest_names(server_options, "keep") == V{"keepalive"});     // the start of one name
  CHECK(closest_names(server_options, "print") == V{"print-config"});
  CHECK(closest_names(server_options, "max-lines") == V{"max-line"});
  CHECK(closest_names(server_options, "web-roots") == V{"web-root"});
  // Two at the same distance: both, in the order given.
  CHECK(closest_names({"max-rate", "max-rats"}, "max-rat") == V{"max-rate", "max-rats"});
  // Nothing close: no guess.
  CHECK(closest_names(server_options, "frobnicate").empty());
  CHECK(closest_names(server_options, "max").empty());        // the start of several names
  CHECK(closest_names(server_options, "x").empty());
  CHECK(closest_names(server_options, "clients").empty());    // 4 edits from max-clients
  CHECK(closest_names(server_options, "bond-to").empty());
  CHECK(closest_names({}, "port").empty());
  // Short names allow one edit, not two.
  CHECK(closest_names(server_options, "wbe") == V{"web"});
  CHECK(closest_names(server_options, "wxyb").empty());
}

TEST_CASE("option_name_of takes the name out of an argument", "[cli]") {
  CHECK(chat::cli::option_name_of("--max-client") == "max-client");
  CHECK(chat::cli::option_name_of("--max-client=5") == "max-client");
  CHECK(chat::cli::option_name_of("-port") == "port");
  CHECK_FALSE(chat::cli::option_name_of("5"));
  CHECK_FALSE(chat::cli::option_name_of("-"));
  CHECK_FALSE(chat::cli::option_name_of("--"));
  CHECK_FALSE(chat::cli::option_name_of(""));
}

TEST_CASE("unknown_option_message names the option and the nearest one", "[cli]") {
  CLI::App app{"test", "prog"};
  int max_clients = 0;
  std::string timeout;
  bool trace = false;
  app.add_option("--max-clients", max_clients);
  app.add_option("--ping-timeout", timeout);
  app.add_flag("--trace", trace);

  SECTION("a close misspelling, with its value") {
    auto [code, message] = parse(app, {"--max-client", "5"});
    CHECK(code != 0);
    CHECK(message == "prog: unknown option --max-client (did you mean --max-clients?)");
  }
  SECTION("a misspelling with =value") {
    auto [code, message] = parse(app, {"--ping-timout=1s"});
    CHECK(message == "prog: unknown option --ping-timout (did you mean --ping-timeout?)");
  }
  SECTION("nothing close") {
    auto [code, message] = parse(app, {"--frobnicate"});
    CHECK(message == "prog: unknown option --frobnicate (prog --help lists them)");
  }
  SECTION("not an option at all: CLI11's own message stands") {
    auto [code, message] = parse(app, {"--trace", "yes"});
    CHECK(code != 0);
    CHECK(message.empty());
  }
  SECTION("a bad value is no unknown option") {
    auto [code, message] = parse(app, {"--max-clients", "many"});
    CHECK(code != 0);
    CHECK(message.empty());
  }
  SECTION("did_you_mean, as a config file would name the key") {
    CHECK(chat::cli::did_you_mean(app, "max-clientz", "") == " (did you mean max-clients?)");
    CHECK(chat::cli::did_you_mean(app, "nothing-like-it").empty());
  }
}

TEST_CASE("unknown_option_message looks in the subcommand that was given", "[cli]") {
  CLI::App app{"test", "prog"};
  app.fallthrough();
  bool json = false;
  int clients = 0;
  app.add_flag("--json", json);
  auto* fanout = app.add_subcommand("fanout");
  fanout->add_option("--clients", clients);
  auto [code, message] = parse(app, {"fanout", "--client", "5"});
  CHECK(code != 0);
  CHECK(message == "prog: unknown option --client (did you mean --clients?)");
}
