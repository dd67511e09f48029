" Vim syntax file
" Language:    sipc route language (.route)
" Maintainer:  the sipc project
"
" The block between the GENERATED markers is written by
" `SIPC_BLESS=1 cargo test --test editors` from `sipc dump keywords` (the
" lexer's keyword table and the builtin catalog); edit the rest by hand.

if exists("b:current_syntax")
  finish
endif

syn case match

" Comments.
syn keyword sipcTodo contained TODO FIXME XXX NOTE
syn match   sipcLineComment "#.*$" contains=sipcTodo,@Spell
syn match   sipcLineComment "//.*$" contains=sipcTodo,@Spell
syn region  sipcBlockComment start="/\*" end="\*/" contains=sipcTodo,@Spell fold

" Pseudo-variables: any `$name` first, the catalog's names below win.
syn match   sipcPseudoVarUnknown "\$\h\w*\%(([^()]*)\)\="
" BEGIN GENERATED
syn keyword sipcRouteKind   request_route reply_route onreply_route failure_route branch_route
syn keyword sipcRouteKind   event_route route
syn keyword sipcControl     if else switch case default while return exit drop break
syn keyword sipcDeclaration let listen advertise domain alias settings module include const define
syn keyword sipcDeclaration ifdef ifndef flag table trunk trunk_group limit acl blocklist
syn keyword sipcBoolean     true false
syn keyword sipcMisspelling elif elsif elseif
syn keyword sipcBuiltin     maxfwd_ok sanity_check force_rport set_reply_no_connect is_request
syn keyword sipcBuiltin     is_reply is_first_hop is_method is_myself has_to_tag loose_route
syn keyword sipcBuiltin     record_route t_check_trans t_precheck_trans t_is_canceled t_check_status
syn keyword sipcBuiltin     t_branch_timeout t_newtran t_is_set t_is_branch_route relay forward
syn keyword sipcBuiltin     reply reply_error on_failure on_reply on_branch append_branch
syn keyword sipcBuiltin     nat_uac_test fix_nated_contact fix_nated_register add_rcv_param
syn keyword sipcBuiltin     set_contact_alias handle_ruri_alias rtpengine_offer rtpengine_answer
syn keyword sipcBuiltin     rtpengine_delete rtpengine_manage within_limit ban in_acl is_scanner
syn keyword sipcBuiltin     is_banned unban dlg_manage set_dlg_profile dlg_profile_size
syn keyword sipcBuiltin     dlg_set_timeout is_known_dlg hep_capture topology_hide save lookup
syn keyword sipcBuiltin     registered add_path add_path_received unregister auth_check
syn keyword sipcBuiltin     auth_challenge consume_credentials is_present_hf append_hf remove_hf
syn keyword sipcBuiltin     replace_hf str_len str_lower str_upper str_substr str_contains
syn keyword sipcBuiltin     str_starts_with to_str to_int log setflag resetflag isflagset table_get
syn keyword sipcBuiltin     table_has select next_destination fork route_attr trunk_stat trunk_is_up
syn keyword sipcBuiltin     trunk_set_up
syn match   sipcPseudoVar "\$\%(ru\|rU\|rd\|rp\|du\|fu\|fU\|fd\|tu\|tU\|td\|si\|sp\|rm\|rs\|rr\|ci\|ua\|cs\|ct\|au\|ar\|lookup_result\|auth_result\|rtpengine_result\|ml\|in_trunk\|out_trunk\|proto\|Ri\|Rp\|T_branch_idx\|T_reply_code\|dlg_state\|dlg_start\)\>(\@!"
syn match   sipcPseudoVarArg "\$\%(hdr\|var\|avp\|dlg_var\|match\)([^()]*)"
" END GENERATED

" Strings, with escapes and interpolated pseudo-variables.
syn match   sipcEscape contained +\\[nrt0\\"$]+
syn match   sipcBadInterp contained "\$[({]"
syn region  sipcString start=+"+ skip=+\\\\\|\\"+ end=+"+ end=+$+ contains=sipcEscape,sipcBadInterp,sipcPseudoVar,sipcPseudoVarArg,sipcPseudoVarUnknown

" Literals: addresses before durations before integers.
syn match   sipcNumber "\<\d\+\>"
syn match   sipcDuration "\<\d\+\%(ms\|s\|m\|h\)\>"
syn match   sipcAddress "\<\d\+\.\d\+\.\d\+\.\d\+\%(:\d\+\|/\d\+\)\=\>"

" Names after declarations.
syn match   sipcRouteName "\%(\<\%(onreply_route\|failure_route\|branch_route\|event_route\|route\)\s\+\)\@<=\h\w*"
syn match   sipcRouteName "\%(\<route\s*(\s*\)\@<=\h\w*"
syn match   sipcConstName "\%(\<\%(const\|define\|flag\|table\|ifdef\|ifndef\)\s\+\)\@<=\h\w*"

syn match   sipcOperator "=\~\|==\|!=\|<=\|>=\|&&\|||\|=>\|[-+*/%<>=!]"

" Folding on braces.
syn region  sipcBlock start="{" end="}" transparent fold

" Words of trunk, trunk_group and table declarations (sema/routing*.rs; hand-kept).
syn keyword sipcRoutingWord by prefix exact range strategy round_robin weighted priority hash
syn keyword sipcRoutingWord least_calls callid from_user ruri_user probe every down up alive
syn keyword sipcRoutingWord all_down weight max_calls transport from group strip replace attr

hi def link sipcTodo             Todo
hi def link sipcLineComment      Comment
hi def link sipcBlockComment     Comment
hi def link sipcRouteKind        Structure
hi def link sipcControl          Statement
hi def link sipcDeclaration      Keyword
hi def link sipcBoolean          Boolean
hi def link sipcMisspelling      Error
hi def link sipcBuiltin          Function
hi def link sipcRoutingWord      Keyword
hi def link sipcPseudoVar        Identifier
hi def link sipcPseudoVarArg     Identifier
hi def link sipcPseudoVarUnknown Special
hi def link sipcString           String
hi def link sipcEscape           SpecialChar
hi def link sipcBadInterp        Error
hi def link sipcNumber           Number
hi def link sipcDuration         Number
hi def link sipcAddress          Constant
hi def link sipcRouteName        Function
hi def link sipcConstName        Constant
hi def link sipcOperator         Operator

let b:current_syntax = "sipc"
