" sipc route files: comments, indentation, formatting.
if exists("b:did_ftplugin")
  finish
endif
let b:did_ftplugin = 1

setlocal comments=:#,://,s1:/*,mb:*,ex:*/
setlocal commentstring=#\ %s
setlocal expandtab shiftwidth=4 softtabstop=4
setlocal foldmethod=syntax foldlevel=99
" `gq` formats the selection with sipc's formatter (whole routes only).
setlocal formatprg=sipc\ fmt\ -

let b:undo_ftplugin = "setlocal comments< commentstring< expandtab< shiftwidth< softtabstop< foldmethod< foldlevel< formatprg<"
