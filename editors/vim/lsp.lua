-- Neovim: the sipc language server for `.route` files.
--
-- Put editors/vim on the runtimepath (for filetype detection, syntax and
-- indentation) and load this file from your config, e.g.
-- `dofile('/path/to/sipc/editors/vim/lsp.lua')` in init.lua.
--
-- The server is started as `sipc lsp`. To run something else, set
-- `vim.g.sipc_lsp_cmd` (a list: program and arguments) before loading this
-- file, e.g. `vim.g.sipc_lsp_cmd = { '/opt/sipc/bin/sipc', 'lsp' }`.
-- Without it, `g:sipc_path` (the binary :SipcFmt runs) is started with
-- `lsp`, if set.
--
-- Works on Neovim 0.7 and later, picking the newest API available:
--   0.11+     vim.lsp.config + vim.lsp.enable
--   0.8-0.10  vim.lsp.start from a FileType autocommand
--   0.7       vim.lsp.start_client once, vim.lsp.buf_attach_client per buffer

local cmd = vim.g.sipc_lsp_cmd or { vim.g.sipc_path or 'sipc', 'lsp' }

if not vim.api.nvim_create_autocmd then
  -- Neovim 0.6 and older have no Lua autocommands and no vim.diagnostic
  -- as the server's diagnostics expect; say so instead of doing nothing.
  vim.api.nvim_echo({ { 'sipc lsp.lua: needs Neovim 0.7 or later', 'ErrorMsg' } }, true, {})
  return
end

-- Filetype detection. editors/vim/ftdetect/sipc.vim does it when editors/vim
-- is on the runtimepath; vim.filetype.add covers Neovim's Lua filetype
-- detection (the default from 0.8 on). On 0.7 that detection is off unless
-- enabled, so a guarded autocommand covers the case of this file being
-- loaded without editors/vim on the runtimepath.
if vim.filetype and vim.filetype.add then
  vim.filetype.add({ extension = { route = 'sipc' } })
end
if vim.fn.has('nvim-0.8') == 0 then
  vim.api.nvim_create_autocmd({ 'BufRead', 'BufNewFile' }, {
    group = vim.api.nvim_create_augroup('sipc_filetype', { clear = true }),
    pattern = '*.route',
    callback = function()
      if vim.bo.filetype ~= 'sipc' then
        vim.bo.filetype = 'sipc'
      end
    end,
  })
end

if vim.lsp.config and vim.lsp.enable then
  -- Neovim 0.11 and later: Neovim finds the root, starts the server and
  -- attaches buffers of the listed filetypes itself.
  vim.lsp.config('sipc', {
    cmd = cmd,
    filetypes = { 'sipc' },
    root_markers = { '.git' },
  })
  vim.lsp.enable('sipc')
  return
end

-- Neovim 0.7 to 0.10.

-- The directory holding the nearest `.git` (a directory, or a file in
-- worktrees and submodules) above the buffer's file, else the file's own
-- directory, else the current directory. finddir/findfile instead of vim.fs,
-- which Neovim 0.7 lacks.
local function root_dir(file)
  if file == '' then
    return vim.fn.getcwd()
  end
  local dir = vim.fn.fnamemodify(file, ':p:h')
  -- 'path'-style argument: commas and spaces in the name are escaped, and
  -- the trailing `;` searches upward.
  local from = vim.fn.escape(dir, ' ,\\') .. ';'
  local git = vim.fn.finddir('.git', from)
  if git == '' then
    git = vim.fn.findfile('.git', from)
  end
  if git == '' then
    return dir
  end
  -- `:p` gives the absolute path, ending in `/` for a directory; without
  -- that slash, `:h` is the directory holding `.git`.
  local abs = vim.fn.fnamemodify(git, ':p'):gsub('/$', '')
  return vim.fn.fnamemodify(abs, ':h')
end

local warned = false
local function executable()
  if vim.fn.executable(cmd[1]) == 1 then
    return true
  end
  if not warned then
    warned = true
    vim.notify(
      string.format('sipc: `%s` is not executable; set vim.g.sipc_lsp_cmd or put sipc on PATH', cmd[1]),
      vim.log.levels.WARN
    )
  end
  return false
end

local group = vim.api.nvim_create_augroup('sipc_lsp', { clear = true })

if vim.lsp.start then
  -- Neovim 0.8 to 0.10: vim.lsp.start reuses the client with the same
  -- name and root directory.
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = 'sipc',
    callback = function(args)
      if not executable() then
        return
      end
      vim.lsp.start({
        name = 'sipc',
        cmd = cmd,
        root_dir = root_dir(vim.api.nvim_buf_get_name(args.buf)),
      }, { bufnr = args.buf })
    end,
  })
  return
end

-- Neovim 0.7: no vim.lsp.start. One client, started with the first sipc
-- buffer, serves them all (the language has one global namespace, and the
-- server reads included files relative to each document, so the root
-- directory only seeds the workspace). A client that exited is replaced by
-- a new one on the next sipc buffer.
local client_id = nil

vim.api.nvim_create_autocmd('FileType', {
  group = group,
  pattern = 'sipc',
  callback = function(args)
    local client = client_id and vim.lsp.get_client_by_id(client_id)
    if not client or client.is_stopped() then
      if not executable() then
        return
      end
      local root = root_dir(vim.api.nvim_buf_get_name(args.buf))
      client_id = vim.lsp.start_client({
        name = 'sipc',
        cmd = cmd,
        root_dir = root,
        on_exit = function(_, _, id)
          if client_id == id then
            client_id = nil
          end
        end,
      })
      if not client_id then
        return
      end
    end
    vim.lsp.buf_attach_client(args.buf, client_id)
  end,
})
