" sipc route files. `set filetype` (not `setfiletype`): Vim and Neovim would
" otherwise guess `conf` from the `#` comments first.
autocmd BufRead,BufNewFile *.route set filetype=sipc
