-- Neovim: the sipc language server for `.route` files.
--
-- Put editors/vim on the runtimepath (for filetype detection, syntax and
-- indentation) and this file in your config, e.g. ~/.config/nvim/plugin/sipc.lua.
-- `sipc` must be on PATH, or change `cmd`.

vim.filetype.add({ extension = { route = 'sipc' } })

if vim.lsp.config then
  -- Neovim 0.11 and later.
  vim.lsp.config('sipc', {
    cmd = { 'sipc', 'lsp' },
    filetypes = { 'sipc' },
    root_markers = { '.git' },
  })
  vim.lsp.enable('sipc')
else
  -- Neovim 0.8 to 0.10.
  vim.api.nvim_create_autocmd('FileType', {
    pattern = 'sipc',
    callback = function(args)
      vim.lsp.start({
        name = 'sipc',
        cmd = { 'sipc', 'lsp' },
        root_dir = vim.fs.dirname(vim.fs.find({ '.git' }, { upward = true, path = args.file })[1]),
      })
    end,
  })
end
