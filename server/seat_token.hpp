// Resume tokens: what a client with ids holds to take its seat back after a drop
// (docs/protocol.md, "Resuming a seat"). 128 random bits from the kernel (getrandom(2)), as 32
// hex digits. The server keeps only the token's SHA-256, in memory and in the database, and
// never logs a token: one that leaked from a log or a copy of the database would let anyone
// take a seat.
//
// Pure functions; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace chat {

// A new token: 32 lowercase hex digits (128 bits). Throws std::system_error if the kernel has
// no randomness to give (getrandom fails), which it does not once the system has booted.
std::string new_token();

// The token's SHA-256, in hex (64 digits): the only form the server keeps.
std::string token_hash(std::string_view token);

// Whether two hashes are equal, in a time that does not depend on where they differ
// (CRYPTO_memcmp): a timing difference must not tell an attacker how much of a guess is right.
bool same_hash(std::string_view a, std::string_view b);

}  // namespace chat
