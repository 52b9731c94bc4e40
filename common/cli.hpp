// Command-line helpers shared by chatserver, chatclient and chatbench (all parse with CLI11):
// the "did you mean --max-clients?" answer to a misspelt option, one exit code for every
// usage error, and the words --help uses for the formats people type.
//
// CLI11 2.1 (Debian 12's) answers an unknown option with "The following argument was not
// expected: --max-client" and nothing more; these helpers look for the nearest long option.
//
// Pure functions and main-thread code: nothing here is shared between threads.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::cli {

// Exit codes of the programs: 0 after --help/--version, 2 for any usage error (README, man pages).
inline constexpr int exit_help = 0;
inline constexpr int exit_usage = 2;

// The help's names for the formats people type, and the footer lines that explain them: a
// program's --help ends with "Formats:" and the lines for the names it uses. Two spaces or more
// after the name: help2man (the man pages) then makes each line a term and its description.
inline constexpr const char* duration_type = "DURATION";
inline constexpr const char* size_type = "SIZE";
inline constexpr const char* address_type = "ADDRESS";
inline constexpr const char* number_type = "N";
inline constexpr const char* keepalive_type = "KEEPALIVE";
inline constexpr const char* duration_format = "DURATION:   a number and a unit: 100ms, 1.5s, 2m, 1h (0 alone is zero)";
inline constexpr const char* size_format = "SIZE:       bytes, or with a unit: 4096, 64KiB, 1MiB (KiB = 1024 bytes)";
inline constexpr const char* keepalive_format =
    "KEEPALIVE:  IDLE,INTERVAL,COUNT in whole seconds, e.g. 10s,2s,3 (the first probe after IDLE of silence, "
    "then one every INTERVAL; COUNT unanswered: gone), or off";
inline constexpr const char* number_format = "N:          a whole number, e.g. 1000 (--max-rate takes a fraction too: 2.5)";
inline constexpr const char* address_format =
    "ADDRESS:    an IPv4 or IPv6 address, or a host name: 192.168.1.20, 127.0.0.1, ::1, localhost";

// Edit distance between `a` and `b`: insertions, deletions, substitutions and swaps of two
// neighbours ("timout" -> "timeout" is 1, "maxclients" -> "max-clients" is 1). Case-sensitive.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The names among `candidates` closest to `typed` (names without dashes, as "max-clients";
// `typed` is compared in lower case, so "Port" finds "port"): those at the smallest distance,
// if it is at most 2 and at most a third of the name (at least 1), in the order of
// `candidates`; or else the one candidate that `typed` (3 characters or more) is the start of.
// Empty when nothing is close: better no suggestion than a wrong one.
std::vector<std::string> closest_names(const std::vector<std::string>& candidates, std::string_view typed);

// The long option names (without dashes) of `app` and of the subcommands it parsed.
std::vector<std::string> long_option_names(const CLI::App& app);

// "--max-client=5" or "-max-client" -> "max-client"; nullopt for an argument that is not an
// option ("5", "-", "--").
std::optional<std::string> option_name_of(std::string_view argument);

// " (did you mean --max-clients?)" or " (did you mean --max-line or --max-rate?)" for the
// option name `typed`, or "" when no option of `app` is close. `dashes`: "--" on the command
// line, "" in a config file.
std::string did_you_mean(const CLI::App& app, std::string_view typed, std::string_view dashes = "--");

// For a ParseError that is about an unknown option (CLI::ExtrasError naming one), the message
// to print: "chatserver: unknown option --max-client (did you mean --max-clients?)"; nullopt
// for any other error.
std::optional<std::string> unknown_option_message(const CLI::App& app, const CLI::ParseError& error,
                                                  std::string_view program);

// Handles what app.parse() threw: prints the help or version (exit_help), or the error with
// the suggestion for an unknown option and CLI11's "Run with --help" line, and returns
// exit_usage. Main thread.
int exit_for(CLI::App& app, const CLI::ParseError& error, std::string_view program);

// One line (at most 4096 bytes, without its LF or CR) read from `in`. When `in` is a terminal,
// `prompt` goes to `out` first and the line is not echoed (a password); otherwise no prompt.
// nullopt at end of input before any byte. Any thread; blocks until the line or the end.
std::optional<std::string> read_hidden_line(int in, int out, std::string_view prompt);

}  // namespace chat::cli
