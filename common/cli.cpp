#include "common/cli.hpp"

#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <iostream>

namespace chat::cli {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // The "optimal string alignment" distance: Levenshtein's three rows, plus a swap of two
  // neighbours counted as one edit, the commonest slip of the fingers.
  std::vector<std::size_t> before(b.size() + 1), previous(b.size() + 1), current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        current[j] = std::min(current[j], before[j - 2] + 1);
      }
    }
    before.swap(previous);
    previous.swap(current);
  }
  return previous[b.size()];
}

std::vector<std::string> closest_names(const std::vector<std::string>& candidates, std::string_view typed) {
  std::string lower(typed);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  std::vector<std::string> best;
  std::size_t best_distance = 3;  // more than any bound below
  for (const auto& name : candidates) {
    const std::size_t bound = std::clamp<std::size_t>(name.size() / 3, 1, 2);
    const std::size_t d = edit_distance(lower, name);
    if (d > bound || d > best_distance) continue;
    if (d < best_distance) best.clear();
    best_distance = d;
    if (std::find(best.begin(), best.end(), name) == best.end()) best.push_back(name);
  }
  if (!best.empty() || lower.size() < 3) return best;
  // "--keep" for "--keepalive": the start of exactly one name.
  for (const auto& name : candidates) {
    if (name.starts_with(lower) && std::find(best.begin(), best.end(), name) == best.end()) best.push_back(name);
  }
  if (best.size() != 1) best.clear();
  return best;
}

std::vector<std::string> long_option_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* option : app.get_options()) {
    for (const auto& name : option->get_lnames()) names.push_back(name);
  }
  for (const CLI::App* sub : app.get_subcommands()) {
    for (auto& name : long_option_names(*sub)) names.push_back(std::move(name));
  }
  return names;
}

std::optional<std::string> option_name_of(std::string_view argument) {
  if (argument.size() < 2 || argument.front() != '-') return std::nullopt;
  argument.remove_prefix(argument[1] == '-' ? 2 : 1);
  argument = argument.substr(0, argument.find('='));
  if (argument.empty()) return std::nullopt;
  return std::string(argument);
}

std::string did_you_mean(const CLI::App& app, std::string_view typed, std::string_view dashes) {
  const auto names = closest_names(long_option_names(app), typed);
  if (names.empty()) return {};
  std::string text = " (did you mean ";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) text += i + 1 == names.size() ? " or " : ", ";
    text += std::string(dashes) + names[i];
  }
  return text + "?)";
}

std::optional<std::string> unknown_option_message(const CLI::App& app, const CLI::ParseError& error,
                                                  std::string_view program) {
  if (dynamic_cast<const CLI::ExtrasError*>(&error) == nullptr) return std::nullopt;
  // What CLI11 could not place, in command-line order; a value after an unknown option
  // ("--max-client 5") is among them, as an argument of its own.
  for (const auto& argument : app.remaining(true)) {
    const auto name = option_name_of(argument);
    if (!name) continue;
    std::string typed = argument.substr(0, argument.find('='));
    std::string message = std::string(program) + ": unknown option " + typed;
    const std::string hint = did_you_mean(app, *name);
    return message + (hint.empty() ? " (" + std::string(program) + " --help lists them)" : hint);
  }
  return std::nullopt;
}

int exit_for(CLI::App& app, const CLI::ParseError& error, std::string_view program) {
  if (error.get_exit_code() == 0) {
    app.exit(error);  // prints the help or the version
    return exit_help;
  }
  if (const auto message = unknown_option_message(app, error, program)) {
    std::cerr << *message << "\nRun with --help for more information.\n";
    return exit_usage;
  }
  app.exit(error);
  return exit_usage;
}

std::optional<std::string> read_hidden_line(int in, int out, std::string_view prompt) {
  const bool tty = ::isatty(in) == 1;
  termios saved{};
  if (tty) {
    ::tcgetattr(in, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(in, TCSAFLUSH, &quiet);
    [[maybe_unused]] auto w = ::write(out, prompt.data(), prompt.size());
  }
  std::string line;
  char c = 0;
  bool any = false;
  while (line.size() < 4096 && ::read(in, &c, 1) == 1) {
    any = true;
    if (c == '\n') break;
    line += c;
  }
  if (tty) {
    ::tcsetattr(in, TCSAFLUSH, &saved);
    [[maybe_unused]] auto w = ::write(out, "\n", 1);
  }
  if (!any) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace chat::cli
