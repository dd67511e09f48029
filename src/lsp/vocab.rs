//! The words of the language, from their one source each.
//!
//! Keywords come from the lexer's table ([`crate::syntax::token::KEYWORDS`]),
//! builtins, pseudo-variables and settings from the catalog
//! ([`crate::sema::builtins`]). Completion reads them here, `sipc dump
//! keywords` prints them as JSON, and the editor grammars under `editors/`
//! are generated from them (a test fails when those drift).

use serde::Serialize;

use crate::sema::builtins;
use crate::syntax::token::{KEYWORDS, KeywordClass};

/// Every word an editor should know, grouped the way highlighters use them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Vocabulary {
    pub route_kinds: Vec<&'static str>,
    pub control: Vec<&'static str>,
    pub declarations: Vec<&'static str>,
    pub constants: Vec<&'static str>,
    pub misspellings: Vec<&'static str>,
    pub functions: Vec<&'static str>,
    /// Pseudo-variable names without `$`.
    pub pseudo_vars: Vec<&'static str>,
    /// Global setting names and module parameter names.
    pub settings: Vec<&'static str>,
    pub modules: Vec<&'static str>,
    pub log_levels: Vec<&'static str>,
}

pub fn keywords(class: KeywordClass) -> Vec<&'static str> {
    KEYWORDS.iter().filter(|(_, c)| *c == class).map(|(k, _)| *k).collect()
}

impl Vocabulary {
    pub fn collect() -> Vocabulary {
        let mut settings: Vec<&str> = builtins::SETTINGS.iter().map(|s| s.name).collect();
        settings.sort_unstable();
        settings.dedup();
        let mut modules: Vec<&str> =
            builtins::SETTINGS.iter().map(|s| s.module).filter(|m| !m.is_empty()).collect();
        modules.sort_unstable();
        modules.dedup();
        Vocabulary {
            route_kinds: keywords(KeywordClass::RouteKind),
            control: keywords(KeywordClass::Control),
            declarations: keywords(KeywordClass::Declaration),
            constants: keywords(KeywordClass::Constant),
            misspellings: keywords(KeywordClass::Misspelling),
            functions: builtins::FUNCTIONS.iter().map(|f| f.name).collect(),
            pseudo_vars: builtins::PSEUDO_VARS.iter().map(|p| p.name).collect(),
            settings,
            modules,
            log_levels: builtins::LOG_LEVELS.to_vec(),
        }
    }

    /// Each class with its words, in declaration order.
    pub fn classes(&self) -> [(&'static str, &[&'static str]); 10] {
        [
            ("route_kinds", &self.route_kinds),
            ("control", &self.control),
            ("declarations", &self.declarations),
            ("constants", &self.constants),
            ("misspellings", &self.misspellings),
            ("functions", &self.functions),
            ("pseudo_vars", &self.pseudo_vars),
            ("settings", &self.settings),
            ("modules", &self.modules),
            ("log_levels", &self.log_levels),
        ]
    }
}
