//! The protocol loop: initialize, then requests and notifications until
//! `shutdown` and `exit`.
//!
//! Documents are synchronised in full (each change sends the whole text):
//! route files are small, and it keeps the server free of edit arithmetic.
//! Diagnostics are published on open, change and save, for the document and
//! for every other open one (it may include the document that changed);
//! every other answer is computed on request from the current buffers.

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, DidSaveTextDocument,
    Notification as _, PublishDiagnostics,
};
use lsp_types::request::{
    Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest, References,
    Request as _,
};
use lsp_types::{
    CompletionOptions, CompletionResponse, DocumentSymbolResponse, GotoDefinitionResponse,
    HoverProviderCapability, OneOf, Position, PublishDiagnosticsParams, Range, ServerCapabilities,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextEdit, Url,
};

use super::document::{Analysis, OpenDocs};
use super::{completion, diagnostics, hover, navigation, symbols};
use crate::syntax::span::FileId;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Serves one client on standard input and output until it exits.
pub fn serve_stdio() -> Result<(), Error> {
    let (connection, io_threads) = Connection::stdio();
    serve(&connection)?;
    drop(connection);
    io_threads.join()?;
    Ok(())
}

pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec!["$".into(), "(".into()]),
            ..Default::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        ..Default::default()
    }
}

/// Runs the protocol on an established connection.
pub fn serve(connection: &Connection) -> Result<(), Error> {
    let caps = serde_json::to_value(capabilities())?;
    let (id, _params) = connection.initialize_start()?;
    connection.initialize_finish(
        id,
        serde_json::json!({
            "capabilities": caps,
            "serverInfo": { "name": "sipc", "version": env!("CARGO_PKG_VERSION") },
        }),
    )?;
    let mut docs = OpenDocs::default();
    for msg in &connection.receiver {
        match msg {
            Message::Request(req) => {
                if connection.handle_shutdown(&req)? {
                    return Ok(());
                }
                let resp = handle_request(&docs, req);
                connection.sender.send(Message::Response(resp))?;
            }
            Message::Notification(n) => {
                if let Some(uri) = handle_notification(&mut docs, n) {
                    publish(connection, &docs, uri.clone())?;
                    // Another open document may include the one that changed.
                    let others: Vec<Url> =
                        docs.texts.keys().filter(|u| **u != uri).cloned().collect();
                    for other in others {
                        publish(connection, &docs, other)?;
                    }
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

fn publish(connection: &Connection, docs: &OpenDocs, uri: Url) -> Result<(), Error> {
    let diagnostics = match docs.texts.get(&uri) {
        Some(text) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            diagnostics::check(&uri, text, docs)
        }))
        .unwrap_or_default(),
        None => Vec::new(),
    };
    let params = PublishDiagnosticsParams { uri, diagnostics, version: None };
    let n = Notification::new(PublishDiagnostics::METHOD.to_string(), params);
    connection.sender.send(Message::Notification(n))?;
    Ok(())
}

/// Updates the open documents; returns the document whose diagnostics to publish.
fn handle_notification(docs: &mut OpenDocs, n: Notification) -> Option<Url> {
    match n.method.as_str() {
        DidOpenTextDocument::METHOD => {
            let p: lsp_types::DidOpenTextDocumentParams = serde_json::from_value(n.params).ok()?;
            docs.texts.insert(p.text_document.uri.clone(), p.text_document.text);
            Some(p.text_document.uri)
        }
        DidChangeTextDocument::METHOD => {
            let p: lsp_types::DidChangeTextDocumentParams =
                serde_json::from_value(n.params).ok()?;
            // Full sync: the last change holds the whole text.
            let text = p.content_changes.into_iter().last()?.text;
            docs.texts.insert(p.text_document.uri.clone(), text);
            Some(p.text_document.uri)
        }
        DidSaveTextDocument::METHOD => {
            let p: lsp_types::DidSaveTextDocumentParams = serde_json::from_value(n.params).ok()?;
            Some(p.text_document.uri)
        }
        DidCloseTextDocument::METHOD => {
            let p: lsp_types::DidCloseTextDocumentParams = serde_json::from_value(n.params).ok()?;
            docs.texts.remove(&p.text_document.uri);
            // Clears its diagnostics.
            Some(p.text_document.uri)
        }
        _ => None,
    }
}

fn handle_request(docs: &OpenDocs, req: Request) -> Response {
    let id = req.id.clone();
    let method = req.method.clone();
    // A bug in one answer must not take the editor's server down with it.
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(docs, req)))
        .unwrap_or_else(|_| {
            Err((ErrorCode::InternalError, format!("sipc lsp panicked in {method}")))
        });
    match answer {
        Ok(Some(value)) => Response::new_ok(id, value),
        Ok(None) => Response::new_ok(id, serde_json::Value::Null),
        Err((code, message)) => Response::new_err(id, code as i32, message),
    }
}

type Answer = Result<Option<serde_json::Value>, (ErrorCode, String)>;

fn params<P: serde::de::DeserializeOwned>(req: Request) -> Result<P, (ErrorCode, String)> {
    serde_json::from_value(req.params).map_err(|e| (ErrorCode::InvalidParams, e.to_string()))
}

fn json<T: serde::Serialize>(v: T) -> Answer {
    serde_json::to_value(v).map(Some).map_err(|e| (ErrorCode::InternalError, e.to_string()))
}

/// The analysis of an open document and the byte offset of a position in it.
fn at(docs: &OpenDocs, uri: &Url, pos: Position) -> Option<(Analysis, usize)> {
    let text = docs.texts.get(uri)?;
    let a = Analysis::build(uri, text, docs);
    let offset = a.files[0].index.offset(&a.files[0].text, pos);
    Some((a, offset))
}

fn dispatch(docs: &OpenDocs, req: Request) -> Answer {
    match req.method.as_str() {
        HoverRequest::METHOD => {
            let p: lsp_types::HoverParams = params(req)?;
            let tp = p.text_document_position_params;
            let Some((a, offset)) = at(docs, &tp.text_document.uri, tp.position) else {
                return Ok(None);
            };
            json(hover::hover(&a, offset))
        }
        Completion::METHOD => {
            let p: lsp_types::CompletionParams = params(req)?;
            let tp = p.text_document_position;
            let Some((a, offset)) = at(docs, &tp.text_document.uri, tp.position) else {
                return Ok(None);
            };
            json(CompletionResponse::Array(completion::complete(&a, offset)))
        }
        GotoDefinition::METHOD => {
            let p: lsp_types::GotoDefinitionParams = params(req)?;
            let tp = p.text_document_position_params;
            let Some((a, offset)) = at(docs, &tp.text_document.uri, tp.position) else {
                return Ok(None);
            };
            json(GotoDefinitionResponse::Array(navigation::definition(&a, offset)))
        }
        References::METHOD => {
            let p: lsp_types::ReferenceParams = params(req)?;
            let tp = p.text_document_position;
            let Some((a, offset)) = at(docs, &tp.text_document.uri, tp.position) else {
                return Ok(None);
            };
            json(navigation::references(&a, offset, p.context.include_declaration))
        }
        DocumentSymbolRequest::METHOD => {
            let p: lsp_types::DocumentSymbolParams = params(req)?;
            let uri = p.text_document.uri;
            let Some(text) = docs.texts.get(&uri) else { return Ok(None) };
            let a = Analysis::build(&uri, text, docs);
            json(DocumentSymbolResponse::Nested(symbols::document_symbols(&a.files[0])))
        }
        Formatting::METHOD => {
            let p: lsp_types::DocumentFormattingParams = params(req)?;
            let Some(text) = docs.texts.get(&p.text_document.uri) else { return Ok(None) };
            json(format_edits(text))
        }
        _ => Err((ErrorCode::MethodNotFound, format!("unhandled method {}", req.method))),
    }
}

/// One edit replacing the whole text, or none when it is formatted already
/// (or does not parse: formatting never touches a broken file).
fn format_edits(text: &str) -> Vec<TextEdit> {
    match crate::fmt::format_source(FileId(0), text) {
        Ok(new) if new != text => {
            let index = super::position::LineIndex::new(text);
            let end = index.position(text, text.len());
            vec![TextEdit { range: Range::new(Position::new(0, 0), end), new_text: new }]
        }
        _ => Vec::new(),
    }
}
