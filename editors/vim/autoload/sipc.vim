" :SipcTest and :SipcTrace, the commands ftplugin/sipc.vim (and, for
" `.test.toml` files, ftplugin/toml/sipc.vim) define; loaded on first use.
" Plain Vimscript for Vim 9 and Neovim 0.7+. g:sipc_path names the binary
" (default `sipc`, looked up on PATH).

function! s:Binary() abort
  return get(g:, 'sipc_path', 'sipc')
endfunction

function! s:Error(lines) abort
  echohl ErrorMsg
  for l:line in a:lines
    echomsg l:line
  endfor
  echohl None
endfunction

function! s:IsString(value) abort
  return type(a:value) == type('')
endfunction

" The quickfix entries for a report of `sipc test --format json` (a decoded
" dict): each failing test at its `[[test]]` line of its test file, the text
" its name and its error and mismatches (`step N: key: expected X, got Y`,
" separated by `; `); a test file that could not run (its config has
" errors, the file is invalid) at its first line with the error's first
" line, the error's further lines following as text-only entries.
function! sipc#QuickfixItems(report) abort
  let l:items = []
  for l:f in get(a:report, 'files', [])
    let l:file = fnamemodify(l:f.file, ':p')
    if s:IsString(get(l:f, 'error', v:null))
      let l:lines = split(l:f.error, "\n")
      call add(l:items, {'filename': l:file, 'lnum': 1, 'text': get(l:lines, 0, ''), 'type': 'E'})
      for l:line in l:lines[1:]
        call add(l:items, {'text': l:line, 'valid': 0})
      endfor
      continue
    endif
    for l:t in get(l:f, 'tests', [])
      if l:t.passed
        continue
      endif
      let l:parts = []
      if s:IsString(get(l:t, 'error', v:null))
        call add(l:parts, substitute(l:t.error, '\n', ' ', 'g'))
      endif
      for l:m in get(l:t, 'mismatches', [])
        call add(l:parts, printf('step %s: %s: expected %s, got %s', l:m.step, l:m.key, l:m.expected, l:m.actual))
      endfor
      call add(l:items, {
            \ 'filename': l:file,
            \ 'lnum': get(l:t, 'line', 1),
            \ 'text': l:t.name . (empty(l:parts) ? '' : ': ' . join(l:parts, '; ')),
            \ 'type': 'E',
            \ })
    endfor
  endfor
  return l:items
endfunction

" :SipcTest: runs `sipc test --format json` on the current `.route` or
" `.test.toml` file (as saved) and makes a new quickfix list of its
" failures, opened when there are any; otherwise echoes how many tests
" passed. When the binary gives no report (no test file, a bad path: exit
" code 2), its message is shown instead.
function! sipc#Test() abort
  let l:file = expand('%:p')
  if l:file !~# '\.route$' && l:file !~# '\.test\.toml$'
    call s:Error(['sipc: :SipcTest runs on a .route or .test.toml file'])
    return
  endif
  if &modified
    echohl WarningMsg
    echomsg 'sipc: the buffer has unsaved changes; testing the file as saved'
    echohl None
  endif
  let l:out = system(shellescape(s:Binary()) . ' test --format json ' . shellescape(l:file))
  let l:code = v:shell_error
  " The report is the whole of stdout; system() also captures stderr, so
  " start at the line that opens the JSON object.
  let l:start = match(l:out, '^{\|\n\zs{')
  let l:report = v:null
  if (l:code == 0 || l:code == 1) && l:start >= 0
    try
      let l:report = json_decode(strpart(l:out, l:start))
    catch
      let l:report = v:null
    endtry
  endif
  if type(l:report) != type({})
    call s:Error(['sipc test failed (exit code ' . l:code . '):'] + split(l:out, "\n"))
    return
  endif
  call setqflist([], ' ', {
        \ 'title': 'sipc test ' . fnamemodify(l:file, ':~:.'),
        \ 'items': sipc#QuickfixItems(l:report),
        \ })
  if l:report.failed > 0 || l:report.broken_files > 0
    copen
  else
    cclose
    echo printf('%d test%s passed', l:report.passed, l:report.passed == 1 ? '' : 's')
  endif
endfunction

" :SipcTrace [args]: a terminal window running `sipc trace <file> <args>`
" against the proxy `sipc run <file>` serves, the current `.route` file.
" The arguments are passed through the shell as typed, e.g.
"   :SipcTrace --call-id a84b4c76e66710
"   :SipcTrace --where '$fU == "alice"' --count 10
" The terminal is started with term_start() (Vim, in a split like
" :terminal) or termopen() in a new split (Neovim, like :split | terminal)
" rather than with the :terminal command, which would expand `%`, `#` and
" `!` in the arguments.
function! sipc#Trace(args) abort
  let l:file = expand('%:p')
  if l:file !~# '\.route$'
    call s:Error(['sipc: :SipcTrace runs from the .route file the proxy serves'])
    return
  endif
  let l:cmd = shellescape(s:Binary()) . ' trace ' . shellescape(l:file)
  if a:args =~# '\S'
    let l:cmd .= ' ' . a:args
  endif
  if has('nvim')
    new
    call termopen(l:cmd)
  elseif has('terminal')
    " Closing the window interrupts the trace, as Ctrl-C does.
    call term_start([&shell, &shellcmdflag, l:cmd], {
          \ 'term_name': 'sipc trace ' . fnamemodify(l:file, ':t'),
          \ 'term_kill': 'int',
          \ })
  else
    call s:Error(['sipc: :SipcTrace needs a Vim with the +terminal feature'])
  endif
endfunction
