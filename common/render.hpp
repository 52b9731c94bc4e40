// Readable rendering of server events: what text-mode clients (nc, telnet) receive from the
// server and what chatclient prints. Pure functions; safe from any thread.
#pragma once

#include "common/protocol.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

// "14:02:09" in the machine's local time zone.
std::string clock_stamp(std::chrono::system_clock::time_point when);

// The text after the stamp, e.g. "<alice> hello", "*** bob joined (3 online)",
// "*** bob's connection closed (2 online)": leaves, goodbyes and refusals in the words of
// common/wording.hpp. `online` is the room size after a join or leave when known. `verbose`
// adds the protocol's detail in brackets ("[closed: connection closed by peer (reader, ...)]").
// Returns nullopt for events a person does not need to see (PING, PONG).
std::optional<std::string> render_event(const Event& event, std::optional<std::size_t> online = {},
                                        bool verbose = false);

// "[14:02:09] " + render_event(...), or nullopt.
std::optional<std::string> render_line(const Event& event, std::chrono::system_clock::time_point when,
                                       std::optional<std::size_t> online = {}, bool verbose = false);

// "41 s", "3 min 5 s", "1 h 2 min" from milliseconds ("41000"); "a while" from nonsense.
std::string away_time(std::string_view milliseconds);
// "12 messages you missed" from "12" (the count of a RESUMED line).
std::string missed_words(std::string_view count);

// The lines /help prints, shared by text mode and chatclient.
const std::vector<std::string>& help_lines();

}  // namespace chat
