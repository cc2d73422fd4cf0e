//! A test HTTP origin on 127.0.0.1: answers every request with its current response (which
//! a test can change between requests) and counts the requests. One response per
//! connection, so every request is a real TCP round trip.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct Origin {
    pub port: u16,
    response: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

impl Origin {
    pub fn start(response: &str) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let response = Arc::new(Mutex::new(response.to_owned()));
        let hits = Arc::new(AtomicUsize::new(0));
        let (answer, counted) = (response.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                counted.fetch_add(1, Ordering::SeqCst);
                let text = answer.lock().unwrap().clone();
                let _ = stream.write_all(text.as_bytes());
            }
        });
        Origin {
            port,
            response,
            hits,
        }
    }

    /// A 200 with this body and `Cache-Control` header.
    pub fn ok(body: &str, cache_control: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\ncache-control: {cache_control}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    pub fn set(&self, response: &str) {
        *self.response.lock().unwrap() = response.to_owned();
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}
