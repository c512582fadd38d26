#!/usr/bin/env bash
# ops_format: the files listed in tests/ops/format-files are formatted as
# .clang-format says (clang-format from ops/install-deps), so the code
# cannot drift from it again. To fix a failure:
#     clang-format -i FILE...
#
#   format.sh              check the listed files under $QS_SRC
#   format.sh --self-test  a copy with one line indented by spaces must fail
set -euo pipefail
: "${QS_SRC:?}"
command -v clang-format >/dev/null || { echo "FAIL: clang-format is not installed (ops/install-deps)"; exit 1; }

files() { # files ROOT: the listed files that exist under ROOT, relative to it
	(
		cd "$1"
		shopt -s nullglob
		declare -A keep=()
		while read -r g; do
			case "$g" in '' | '#'*) continue ;; esac
			if [ "${g#!}" != "$g" ]; then
				for f in ${g#!}; do unset "keep[$f]"; done
			else
				for f in $g; do keep[$f]=1; done
			fi
		done <"$QS_SRC/tests/ops/format-files"
		printf '%s\n' "${!keep[@]}" | sort
	)
}

check() { # check ROOT
	local bad=0 n=0
	while read -r f; do
		n=$((n + 1))
		if ! (cd "$1" && clang-format --dry-run --Werror "$f" 2>/dev/null); then
			echo "FAIL: $f drifted from .clang-format (clang-format -i $f)"
			bad=1
		fi
	done < <(files "$1")
	[ "$n" -gt 0 ] || { echo "FAIL: no files to check"; return 1; }
	[ "$bad" = 0 ] && echo "ok: $n files formatted as .clang-format says"
	return "$bad"
}

if [ "${1:-}" = --self-test ]; then
	t=$(mktemp -d)
	trap 'rm -rf "$t"' EXIT
	cp "$QS_SRC/.clang-format" "$t/"
	mkdir -p "$t/proto"
	cp "$QS_SRC/proto/json_strict.c" "$t/proto/"
	(cd "$t" && clang-format --dry-run --Werror proto/json_strict.c) ||
		{ echo "FAIL: the unchanged copy does not pass"; exit 1; }
	sed -i 's/^\tif (!json_is_object(o))$/        if (!json_is_object(o))/' "$t/proto/json_strict.c"
	grep -q '^        if (!json_is_object' "$t/proto/json_strict.c" || { echo "FAIL: no drift planted"; exit 1; }
	if check "$t" >/dev/null; then
		echo "FAIL: a line indented with spaces was not caught"
		exit 1
	fi
	echo "ok: drift caught"
	exit 0
fi

check "$QS_SRC"
