# bash completion for mxedge(1); installed as
# /usr/share/bash-completion/completions/mxedge by the .deb.
_mxedge() {
	local cur prev words cword
	_init_completion || return
	local cmds="run check-config register status cache console-token version help"
	if [[ $cword -eq 1 ]]; then
		COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
		return
	fi
	case $prev in
	--config | --cloud-ca)
		_filedir
		return
		;;
	--state-dir)
		_filedir -d
		return
		;;
	--user)
		COMPREPLY=($(compgen -u -- "$cur"))
		return
		;;
	--registration-code | --cloud)
		return
		;;
	esac
	local flags=""
	case ${words[1]} in
	run) flags="--config" ;;
	check-config) flags="--config --user" ;;
	register) flags="--registration-code --config --cloud --state-dir --cloud-ca --user" ;;
	status) flags="--config --state-dir --json" ;;
	console-token) flags="--config --json" ;;
	cache)
		if [[ $cword -eq 2 ]]; then
			COMPREPLY=($(compgen -W "ls show purge recover" -- "$cur"))
			return
		fi
		if [[ ${words[2]} == recover ]]; then
			flags="--config --json"
			[[ $cur != -* ]] && { _filedir; return; }
		else
			flags="--config --state-dir --json"
		fi
		;;
	esac
	COMPREPLY=($(compgen -W "$flags --help" -- "$cur"))
} &&
	complete -F _mxedge mxedge
