" Indentation for sipc route files, the layout `sipc fmt` produces: four
" spaces per block, `case` labels one level inside `switch`, their
" statements one more. `#` lines are comments (C indenting would take them
" for preprocessor lines), so this is a small indentexpr rather than cindent.
if exists("b:did_indent")
  finish
endif
let b:did_indent = 1

setlocal nocindent nosmartindent autoindent
setlocal indentexpr=GetSipcIndent()
setlocal indentkeys=0{,0},0),!^F,o,O,e,=case,=default

let b:undo_indent = "setlocal cindent< smartindent< autoindent< indentexpr< indentkeys<"

if exists("*GetSipcIndent")
  finish
endif

let s:skip = 'synIDattr(synID(line("."), col("."), 0), "name") =~? "string\\|comment"'

" The line of the `{` enclosing the cursor line.
function! s:OpenBrace(lnum) abort
  call cursor(a:lnum, 1)
  return searchpair('{', '', '}', 'bW', s:skip)
endfunction

function! GetSipcIndent() abort
  let cur = getline(v:lnum)
  let pos = getpos('.')
  try
    if cur =~# '^\s*}'
      " A closing brace lines up with the line that opened it.
      let open = s:OpenBrace(v:lnum)
      return open > 0 ? indent(open) : 0
    endif
    if cur =~# '^\s*\%(case\>\|default\s*:\)'
      let open = s:OpenBrace(v:lnum)
      return open > 0 ? indent(open) + shiftwidth() : 0
    endif
  finally
    call setpos('.', pos)
  endtry
  let lnum = prevnonblank(v:lnum - 1)
  if lnum == 0
    return 0
  endif
  let ind = indent(lnum)
  " The previous line without strings and trailing comments.
  let prev = substitute(getline(lnum), '"\%([^"\\]\|\\.\)*"', '""', 'g')
  let prev = substitute(prev, '\s*\%(#\|//\).*$', '', '')
  if prev =~# '{\s*$'
    let ind += shiftwidth()
  elseif prev =~# '^\s*\%(case\>.*\|default\s*\):\s*$'
    let ind += shiftwidth()
  endif
  return ind
endfunction
