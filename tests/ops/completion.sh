#!/usr/bin/env bash
# The bash completion knows every top-level command the CLI has.
set -euo pipefail
: "${QS_BIN:?}" "${QS_SRC:?}"
. "$QS_SRC/ops/qsign.bash-completion"
complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _qsign; echo "${COMPREPLY[*]}"; }
[ "$(complete_words qsign tu)" = tuf ] || { echo "FAIL: qsign tu -> $(complete_words qsign tu)"; exit 1; }
[ "$(complete_words qsign -p ci audit ve)" = verify ] || { echo "FAIL: audit ve"; exit 1; }
# Every command listed by `qsign --help` is completed.
for c in $("$QS_BIN/qsign" --help 2>&1 | awk '/^commands:/{f=1;next} f && /^  [a-z]/{print $1}'); do
	case " $(complete_words qsign "") " in *" $c "*) ;; *) echo "FAIL: command $c not completed"; exit 1 ;; esac
done
# Every subcommand of every group is completed.
for grp in request policy audit tuf ca; do
	subs=$("$QS_BIN/qsign" "$grp" --help 2>&1 | awk '/^  [a-z]/{print $1}')
	[ -n "$subs" ] || { echo "FAIL: qsign $grp --help lists no subcommands"; exit 1; }
	for s in $subs; do
		case " $(complete_words qsign "$grp" "") " in *" $s "*) ;; *) echo "FAIL: $grp $s not completed"; exit 1 ;; esac
	done
done
echo PASS
