" sipc route files: comments, indentation, folding, formatting, tests and
" traces.
if exists("b:did_ftplugin")
  finish
endif
let b:did_ftplugin = 1

setlocal comments=:#,://,s1:/*,mb:*,ex:*/
setlocal commentstring=#\ %s
setlocal expandtab shiftwidth=4 softtabstop=4
setlocal foldmethod=syntax foldlevel=99

" :SipcFmt formats the buffer with `sipc fmt -`. On a syntax error the
" buffer is left as it is and the errors are shown (a 'formatprg' filter
" would replace the text with them).
command! -buffer -bar SipcFmt call s:Format()

" :SipcTest runs the config's tests (`sipc test`) into the quickfix list;
" :SipcTrace [args] shows `sipc trace` of the running proxy in a terminal
" window. Both are in autoload/sipc.vim.
command! -buffer -bar SipcTest call sipc#Test()
command! -buffer -nargs=* SipcTrace call sipc#Trace(<q-args>)

let b:undo_ftplugin = "setlocal comments< commentstring< expandtab< shiftwidth< softtabstop< foldmethod< foldlevel<"
      \ . " | delcommand SipcFmt | delcommand SipcTest | delcommand SipcTrace"

if exists("*s:Format")
  finish
endif

function! s:Format() abort
  let out = systemlist(get(g:, 'sipc_path', 'sipc') . ' fmt -', getline(1, '$'))
  if v:shell_error
    echohl ErrorMsg
    echo join(out, "\n")
    echohl None
    return
  endif
  if out ==# getline(1, '$')
    return
  endif
  let view = winsaveview()
  call setline(1, out)
  if line('$') > len(out)
    silent execute (len(out) + 1) . ',$delete _'
  endif
  call winrestview(view)
endfunction
