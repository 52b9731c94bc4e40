// The web page (web/index.html, app.js, style.css, icon.svg), built into the binary.
//
// web/CMakeLists.txt runs web/embed.cmake at build time: it turns every listed file into a
// `static const unsigned char[]` in a generated web_assets.cpp, so an edit to a file under web/
// rebuilds the library and the programs that link it. Nothing is read from disk at run time.
#pragma once

#include <span>
#include <string_view>

namespace chat::web {

struct Asset {
  std::string_view path;          // "/index.html", "/app.js", ...
  std::string_view content_type;  // "text/html; charset=utf-8", "text/javascript; charset=utf-8", ...
  std::string_view body;          // the file's bytes, as they are in web/
};

// The asset served at `path`: "/" and "/index.html" are the page; a query string ("?v=2") is
// ignored. nullptr when there is none.
const Asset* find_asset(std::string_view path);

// Every asset, in the order web/CMakeLists.txt lists them (index.html first).
std::span<const Asset> assets();

}  // namespace chat::web
