//! The integration tests: the real `queuectl` binary, real worker
//! processes, real SQLite files in temp dirs. One binary, a module per area.

mod integration {
    pub mod harness;

    mod bad_input;
    mod chaos;
    mod ci;
    mod cli;
    mod colour;
    mod conventions;
    mod dashboard;
    mod enqueue;
    mod fixtures;
    mod jobfile;
    mod json;
    mod lifecycle;
    mod limits;
    mod model;
    mod postgres;
    mod queues;
    pub mod run;
    mod schema;
    mod triggers;
    mod ui;
    pub mod web;
    mod workers;
}
