#include "server/password.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <semaphore>
#include <stdexcept>
#include <thread>
#include <vector>

namespace chat {
namespace {

constexpr std::size_t salt_bytes = 16;
constexpr std::size_t key_bytes = 32;
constexpr std::uint64_t scrypt_max_memory = 1ull << 30;  // what ln=20, r=8 needs; the parser allows no more

std::string base64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<std::size_t>(std::max(n, 0)));
  return out;
}

std::optional<std::string> unbase64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0 || text.size() > 1024) return std::nullopt;
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  std::size_t size = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts the padding's zero bytes too.
  if (text.ends_with("==")) size -= 2;
  else if (text.ends_with("=")) size -= 1;
  out.resize(size);
  return out;
}

// At most this many scrypt checks at once, whatever the number of readers asking (each takes 32
// MiB at ln=15, and up to 1 GiB at the largest parameters a file may give): the others wait.
std::counting_semaphore<8>& scrypt_slots() {
  static std::counting_semaphore<8> slots(static_cast<std::ptrdiff_t>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u)));
  return slots;
}

std::string scrypt(std::string_view password, const std::string& salt, unsigned log2_n, unsigned r, unsigned p) {
  std::string key(key_bytes, '\0');
  scrypt_slots().acquire();
  struct Release {
    ~Release() { scrypt_slots().release(); }
  } release;
  if (EVP_PBE_scrypt(password.data(), password.size(), reinterpret_cast<const unsigned char*>(salt.data()),
                     salt.size(), std::uint64_t{1} << log2_n, r, p, scrypt_max_memory,
                     reinterpret_cast<unsigned char*>(key.data()), key.size()) != 1) {
    throw std::runtime_error("scrypt failed (out of memory?)");
  }
  return key;
}

// "ln=15" with name "ln=": true and `value` 15. (Not an optional: GCC 12 at -O1 under the
// sanitizers warns falsely that three of them may be used uninitialized.)
bool number_after(std::string_view field, std::string_view name, unsigned& value) {
  if (!field.starts_with(name)) return false;
  field.remove_prefix(name.size());
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  return ec == std::errc() && end == field.data() + field.size();
}

}  // namespace

std::string hash_password(std::string_view password, unsigned log2_n) {
  std::string salt(salt_bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size())) != 1) {
    throw std::runtime_error("no random bytes for the salt");
  }
  const unsigned r = 8, p = 1;
  return "$scrypt$ln=" + std::to_string(log2_n) + ",r=" + std::to_string(r) + ",p=" + std::to_string(p) + "$" +
         base64(salt) + "$" + base64(scrypt(password, salt, log2_n, r, p));
}

std::optional<PasswordHash> parse_password_hash(std::string_view text, std::string* error) {
  const auto fail = [&](std::string why) -> std::optional<PasswordHash> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (!text.starts_with("$scrypt$")) {
    return fail("not a password hash (a line like $scrypt$ln=15,r=8,p=1$...$..., as chatserver --hash-password "
                "writes it; the file must never hold the password itself)");
  }
  std::vector<std::string_view> parts;
  std::string_view rest = text.substr(8);
  for (std::size_t dollar; (dollar = rest.find('$')) != std::string_view::npos;) {
    parts.push_back(rest.substr(0, dollar));
    rest.remove_prefix(dollar + 1);
  }
  parts.push_back(rest);
  if (parts.size() != 3) return fail("a password hash has three parts after $scrypt$: parameters, salt and key");
  PasswordHash hash;
  std::string_view params = parts[0];
  std::vector<std::string_view> fields;
  for (std::size_t comma; (comma = params.find(',')) != std::string_view::npos;) {
    fields.push_back(params.substr(0, comma));
    params.remove_prefix(comma + 1);
  }
  fields.push_back(params);
  unsigned ln = 0, r = 0, p = 0;
  const bool numbers = fields.size() == 3 && number_after(fields[0], "ln=", ln) && number_after(fields[1], "r=", r) &&
                       number_after(fields[2], "p=", p);
  // Bounded: a file with ln=40 would make every join take hours and all the memory.
  if (!numbers || ln < 10 || ln > 20 || r < 1 || r > 16 || p < 1 || p > 4) {
    return fail("the scrypt parameters must read ln=10..20,r=1..16,p=1..4");
  }
  if ((std::uint64_t{128} * r << ln) > scrypt_max_memory) return fail("the scrypt parameters need more than 1 GiB");
  hash.log2_n = ln;
  hash.r = r;
  hash.p = p;
  auto salt = unbase64(parts[1]);
  auto key = unbase64(parts[2]);
  if (!salt || salt->size() < 8) return fail("the salt is not base64 of at least 8 bytes");
  if (!key || key->size() != key_bytes) return fail("the key is not base64 of 32 bytes");
  hash.salt = std::move(*salt);
  hash.key = std::move(*key);
  return hash;
}

RoomPassword::RoomPassword(PasswordHash hash) : hash_(std::move(hash)) {
  if (RAND_bytes(mac_key_.data(), static_cast<int>(mac_key_.size())) != 1) {
    throw std::runtime_error("no random bytes for the password cache's key");
  }
}

std::array<unsigned char, 32> RoomPassword::mac(std::string_view password) const {
  std::array<unsigned char, 32> out{};
  unsigned int size = 0;
  HMAC(EVP_sha256(), mac_key_.data(), static_cast<int>(mac_key_.size()),
       reinterpret_cast<const unsigned char*>(password.data()), password.size(), out.data(), &size);
  return out;
}

bool RoomPassword::check(std::string_view password) {
  const auto tag = mac(password);
  std::optional<std::array<unsigned char, 32>> known;
  {
    std::lock_guard lock(mutex_);
    known = known_;
  }
  if (known && CRYPTO_memcmp(known->data(), tag.data(), tag.size()) == 0) return true;
  const auto key = scrypt(password, hash_.salt, hash_.log2_n, hash_.r, hash_.p);
  if (CRYPTO_memcmp(key.data(), hash_.key.data(), key_bytes) != 0) return false;
  std::lock_guard lock(mutex_);
  known_ = tag;
  return true;
}

Millis Guesses::delay(const std::string& address) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(address);
  if (it == entries_.end()) return Millis(0);
  if (Clock::now() - it->second.last > std::chrono::minutes(10)) {
    entries_.erase(it);
    return Millis(0);
  }
  return Millis(1000) * (1u << std::min(it->second.failures - 1, 4u));
}

void Guesses::failed(const std::string& address) {
  std::lock_guard lock(mutex_);
  if (entries_.size() >= max_addresses && !entries_.contains(address)) {
    const auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                         [](const auto& a, const auto& b) { return a.second.last < b.second.last; });
    entries_.erase(oldest);
  }
  auto& e = entries_[address];
  ++e.failures;
  e.last = Clock::now();
}

void Guesses::succeeded(const std::string& address) {
  std::lock_guard lock(mutex_);
  entries_.erase(address);
}

}  // namespace chat
