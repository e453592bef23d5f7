import { Command, InvalidArgumentError } from 'commander'

/**
 * `poolboard completion bash|zsh`: a completion script made from the command tree itself, so it
 * never falls behind the commands. zsh runs the bash function through bashcompinit.
 */
export function completionCommand(root: () => Command): Command {
  return new Command('completion')
    .description(
      'print a shell completion script: eval "$(poolboard completion bash)" (or zsh) in your shell\'s rc file'
    )
    .argument('<shell>', 'bash or zsh', (v: string) => {
      if (v !== 'bash' && v !== 'zsh') throw new InvalidArgumentError(`expected bash or zsh, got "${v}"`)
      return v
    })
    .option('--json', 'print the command tree the script completes, as JSON')
    .action((shell: 'bash' | 'zsh', opts: { json?: boolean }) => {
      const tree = commandTree(root())
      process.stdout.write(opts.json === true ? JSON.stringify(tree, null, 2) + '\n' : completionScript(shell, tree))
    })
}

export interface TreeNode {
  path: string
  words: string[]
}

/** For every command path ("", "pool", "pool pay", ...): its subcommands and options. */
export function commandTree(root: Command): { nodes: TreeNode[]; valueOptions: string[] } {
  const nodes: TreeNode[] = []
  const valueOptions = new Set<string>()
  const walk = (cmd: Command, path: string[]): void => {
    const subs = cmd.commands.map((c) => c.name())
    const options = cmd.options.flatMap((o) => {
      if (o.required || o.optional) valueOptions.add(o.long ?? '')
      return o.long === undefined ? [] : [o.long]
    })
    nodes.push({ path: path.join(' '), words: [...subs, ...options, '--help'] })
    for (const c of cmd.commands) walk(c, [...path, c.name()])
  }
  walk(root, [])
  valueOptions.delete('')
  return { nodes, valueOptions: [...valueOptions].sort() }
}

const FILE_OPTIONS = ['--datadir', '--dir', '--out']

function completionScript(shell: 'bash' | 'zsh', tree: { nodes: TreeNode[]; valueOptions: string[] }): string {
  const cases = tree.nodes.map((n) => `    "${n.path}") words="${n.words.join(' ')}" ;;`).join('\n')
  const body = `# poolboard ${shell} completion: eval "$(poolboard completion ${shell})"
_poolboard() {
  local cur prev path="" words="" i skip=0
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case " ${FILE_OPTIONS.join(' ')} " in *" $prev "*) COMPREPLY=( $(compgen -d -- "$cur") ); return ;; esac
  case " ${tree.valueOptions.join(' ')} " in *" $prev "*) COMPREPLY=(); return ;; esac
  for ((i=1; i<COMP_CWORD; i++)); do
    if [ $skip = 1 ]; then skip=0; continue; fi
    case "\${COMP_WORDS[i]}" in
      -*) case " ${tree.valueOptions.join(' ')} " in *" \${COMP_WORDS[i]} "*) skip=1 ;; esac ;;
      *) path="\${path:+$path }\${COMP_WORDS[i]}" ;;
    esac
  done
  case "$path" in
${cases}
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
`
  return shell === 'bash'
    ? body + 'complete -F _poolboard poolboard\n'
    : '(( $+functions[compdef] )) || { autoload -U +X compinit && compinit }\nautoload -U +X bashcompinit && bashcompinit\n' +
        body +
        'complete -F _poolboard poolboard\n'
}
