#!/usr/bin/env bash
# Shell completion comes from qsign's command table: the shipped bash and
# zsh scripts are exactly what `qsign completion bash|zsh` prints, and both
# complete every command, every subcommand, each one's own options (as its
# --help names them) and the principals of $QSIGN_HOME/demo.
set -euo pipefail
: "${QS_BIN:?}" "${QS_SRC:?}"
fail() { echo "FAIL: $*"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/qsign-completion.XXXXXX")
trap 'rm -rf "$T"' EXIT
q="$QS_BIN/qsign"

"$q" completion bash >"$T/bash"
"$q" completion zsh >"$T/zsh"
cmp -s "$T/bash" "$QS_SRC/ops/qsign.bash-completion" ||
	fail "ops/qsign.bash-completion is stale: qsign completion bash > ops/qsign.bash-completion"
cmp -s "$T/zsh" "$QS_SRC/ops/qsign.zsh-completion" ||
	fail "ops/qsign.zsh-completion is stale: qsign completion zsh > ops/qsign.zsh-completion"
"$q" completion fish >/dev/null 2>&1 && fail "completion fish accepted"

mkdir -p "$T/home/demo"
: >"$T/home/demo/alice.key"
: >"$T/home/demo/bob.key"
export QSIGN_HOME=$T/home

. "$QS_SRC/ops/qsign.bash-completion"
bash_words() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _qsign; echo "${COMPREPLY[*]}"; }
# zsh: the generated function with compadd and _files replaced by printers.
zsh_words() {
	zsh -f -c '
		compadd() { [[ $1 == -- ]] && shift; print -r -- "$@"; }
		_files() { print -r -- FILES; }
		service=qsign
		words=("$@"); CURRENT=${#words}
		source "$0"' "$QS_SRC/ops/qsign.zsh-completion" "$@" |
		tr '\n' ' ' | sed 's/ $//' | tr ' ' '\n' | grep -- "^${@: -1}" | tr '\n' ' ' | sed 's/ $//'
}
for sh in bash zsh; do
	w() { "${sh}_words" "$@"; }
	[ "$(w qsign tu)" = tuf ] || fail "$sh: qsign tu -> $(w qsign tu)"
	[ "$(w qsign -p ci audit ve)" = verify ] || fail "$sh: audit ve -> $(w qsign -p ci audit ve)"
	[ "$(w qsign -p "")" = "alice bob" ] || fail "$sh: principals: $(w qsign -p "")"
	[ "$(w qsign -p ci request submit --w)" = --wait ] || fail "$sh: request submit --w"
	[ "$(w qsign -p ci keys --p)" = --pem ] || fail "$sh: keys --p"
	[ "$(w qsign completion "")" = "bash zsh --help" ] || fail "$sh: completion: $(w qsign completion "")"
	# Every command and subcommand `qsign --help` lists is completed, and
	# each one's options as its own --help names them.
	"$q" --help | awk '/^commands:/{f=1;next} f && /^  [a-z]/{n=substr($0,3,26); sub(/ +$/,"",n); print n}' >"$T/cmds"
	[ "$(wc -l <"$T/cmds")" -gt 50 ] || fail "qsign --help lists too few commands"
	while read -r c s; do
		case " $(w qsign "") " in *" $c "*) ;; *) fail "$sh: command $c not completed" ;; esac
		if [ -n "$s" ]; then
			case " $(w qsign "$c" "") " in *" $s "*) ;; *) fail "$sh: $c $s not completed" ;; esac
		fi
		# shellcheck disable=SC2086
		"$q" help $c $s >"$T/h"
		for o in $(grep -o -- ' --[a-z][a-z0-9-]*' "$T/h" | sort -u); do
			[ "$o" = --help ] && continue
			grep -q "^  *$o " "$T/h" || head -4 "$T/h" | grep -q -- "$o" || continue
			# shellcheck disable=SC2086
			case " $(w qsign -p ci $c $s --) " in *" $o "*) ;; *) fail "$sh: $c $s: option $o not completed" ;; esac
		done
	done <"$T/cmds"
done
# Every command's help has an example (ids of real length: 32 hex for a
# request, 64 for a digest or key id) and shows --json where it works.
no_json="|tuf show-root|tuf review|ca get|ca fetch|completion|"
while read -r c s; do
	# shellcheck disable=SC2086
	"$q" help $c $s >"$T/help" || fail "qsign help $c $s"
	grep -q "^example: " "$T/help" || fail "qsign help $c $s: no example"
	case "$no_json" in *"|$c${s:+ $s}|"*) ;; *)
		grep -q -- "--json" "$T/help" || fail "qsign help $c $s: does not show --json" ;;
	esac
	for id in $(grep "example" -A3 "$T/help" | grep -oE '\b[0-9a-f]{12,}\b' || true); do
		[ ${#id} = 32 ] || [ ${#id} = 64 ] || fail "qsign help $c $s: example id $id is not of real length"
	done
done <"$T/cmds"
echo PASS
