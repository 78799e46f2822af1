//! Webhook delivery with `reqwest`, and the bot bodies (WeCom, DingTalk,
//! Feishu) built around rendered markdown text.

use std::collections::BTreeMap;

/// POSTs `body`; errors are `(retryable, message)` (5xx, 429 and transport
/// errors are retryable, other 4xx are not).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(), (bool, String)> {
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| (true, format!("POST {url}: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let retry = status.is_server_error() || status.as_u16() == 429;
    Err((
        retry,
        format!(
            "POST {url}: {status}: {}",
            text.chars().take(200).collect::<String>()
        ),
    ))
}

/// The JSON body a bot expects for a markdown `text` titled `title`.
pub fn bot_body(bot: &str, title: &str, text: &str) -> serde_json::Value {
    match bot {
        "dingtalk" => serde_json::json!({
            "msgtype": "markdown",
            "markdown": {"title": title, "text": text},
        }),
        "feishu" => serde_json::json!({
            "msg_type": "text",
            "content": {"text": text},
        }),
        _ => serde_json::json!({
            "msgtype": "markdown",
            "markdown": {"content": text},
        }),
    }
}
