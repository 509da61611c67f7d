//! Integration tests of `coffeebuddy-shared` that need real sockets: the
//! Slack Web API client against the recording Slack fake.

mod slack_client;
