mod email;
mod support;
