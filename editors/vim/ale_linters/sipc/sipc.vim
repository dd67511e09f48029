" ALE (https://github.com/dense-analysis/ale): `sipc lsp` as the language
" server for sipc route files. ALE loads ale_linters/sipc/*.vim from the
" runtimepath for buffers with filetype `sipc`, so putting editors/vim on
" the runtimepath is enough.
"
" g:ale_sipc_sipc_executable (or b:ale_sipc_sipc_executable) names the
" binary; it defaults to g:sipc_path, the binary :SipcFmt runs, else `sipc`.

call ale#Set('sipc_sipc_executable', get(g:, 'sipc_path', 'sipc'))

" The directory holding the nearest `.git` (a directory, or a file in
" worktrees and submodules) above the buffer's file, else the file's own
" directory: ALE checks nothing for a buffer whose project root is empty,
" and a lone route file is worth checking.
function! ale_linters#sipc#sipc#GetProjectRoot(buffer) abort
    let l:git = ale#path#FindNearestDirectory(a:buffer, '.git')
    if !empty(l:git)
        " `/repo/.git/`: `:h` drops the trailing slash, `:h` again is `/repo`.
        return fnamemodify(l:git, ':h:h')
    endif
    let l:git = ale#path#FindNearestFile(a:buffer, '.git')
    if !empty(l:git)
        return fnamemodify(l:git, ':h')
    endif
    return fnamemodify(bufname(a:buffer), ':p:h')
endfunction

call ale#linter#Define('sipc', {
\   'name': 'sipc',
\   'lsp': 'stdio',
\   'executable': {buffer -> ale#Var(buffer, 'sipc_sipc_executable')},
\   'command': '%e lsp',
\   'project_root': function('ale_linters#sipc#sipc#GetProjectRoot'),
\})
