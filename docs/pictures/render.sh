#!/usr/bin/env bash
# Renders docs/pictures/*.dot to SVG and PNG next to them, with Graphviz's dot (Debian package
# graphviz; installed here if missing). Each SVG records the SHA-256 of the source it was drawn
# from, and NAME.dot.sha256 does the same for both pictures: the test docs_pictures_current
# (tests/docs/check_pictures.cmake) compares them with the sources, so a source changed
# without rendering again fails the suite.
#
#   docs/pictures/render.sh        (or: cmake --build build/release --target docs-pictures)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
if ! command -v dot >/dev/null; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz
fi
for src in *.dot; do
  name=${src%.dot}
  sum=$(sha256sum "$src" | cut -d' ' -f1)
  dot -Tsvg "$src" | sed "0,/<svg/s//<!-- rendered from $src sha256 $sum -->\n<svg/" >"$name.svg"
  dot -Tpng -Gdpi=110 "$src" -o "$name.png"
  echo "$sum" >"$src.sha256"
  echo "rendered $name.svg and $name.png from $src"
done
