" `NAME.test.toml` files hold the tests of sipc configs (docs/testing.md);
" they keep the toml filetype and get :SipcTest, which runs them as it does
" from the config's own buffer (see autoload/sipc.vim).
"
" The command belongs to the file's name rather than its filetype, so it is
" left out of b:undo_ftplugin (which the toml ftplugin, sourced after this
" file when editors/vim comes first on the runtimepath, resets anyway).
if expand('%:t') !~# '\.test\.toml$'
  finish
endif

command! -buffer -bar SipcTest call sipc#Test()
