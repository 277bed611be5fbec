//! Rows → Arrow batches → Parquet (zstd) or NDJSON files on an object store.
//!
//! Owns [`PartitionSink`] (the [`RowSink`] the store fills: rows go into Arrow builders per
//! `date=` partition and leave as batches of at most [`BATCH_ROWS`] rows; at most
//! [`MAX_BUFFERED_ROWS`] rows wait in builders, so memory stays bounded whatever the number of
//! days in a chunk) and [`encode`] (runs on its own thread beside the reader: one file per
//! partition, streamed to the destination in parts of [`PART_BYTES`]). A file becomes
//! visible only whole: the local backend writes a staging file and renames it into place
//! (fsynced), an object store publishes an upload when it completes. Nothing is written
//! when a step fails or is aborted: the uploads in flight are aborted.
//!
//! It refuses a row that does not fit the table's schema (a null in a required column):
//! the step fails with the column's name, and no file of it is published.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use arrow_array::builder::{
    Date32Builder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use tokio::runtime::Handle;

use super::schema::{Column, Kind, Table};
use super::{ExportError, Format};
use crate::store::export::{RowSink, Value, DAY_MS};

/// Rows per Arrow batch handed to the encoder.
pub const BATCH_ROWS: usize = 64 * 1024;
/// Rows kept in builders across all partitions before every partition is flushed.
pub const MAX_BUFFERED_ROWS: usize = 256 * 1024;
/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 1024 * 1024;
/// Bytes per upload part (object stores need at least 5 MiB per part but the last).
pub const PART_BYTES: usize = 16 * 1024 * 1024;

/// What travels from the reader to the encoder.
#[derive(Debug)]
pub enum Msg {
    /// A batch of one partition (`None`: the table is not partitioned).
    Batch(Option<i32>, RecordBatch),
    /// The step failed: publish nothing.
    Abort(String),
}

/// One column's builder.
enum Col {
    Text(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Ts(TimestampMicrosecondBuilder),
    Date(Date32Builder),
}

impl Col {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Text => Col::Text(StringBuilder::new()),
            Kind::Int => Col::Int(Int64Builder::new()),
            Kind::Float => Col::Float(Float64Builder::new()),
            Kind::Timestamp => Col::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            Kind::Date => Col::Date(Date32Builder::new()),
        }
    }

    /// Appends `v`; `false` when it cannot be stored in this column.
    fn push(&mut self, v: Value<'_>) -> bool {
        match (self, v) {
            (Col::Text(b), Value::Text(s)) => b.append_value(s),
            (Col::Text(b), Value::Null) => b.append_null(),
            (Col::Int(b), Value::Int(i)) => b.append_value(i),
            (Col::Int(b), Value::Null) => b.append_null(),
            (Col::Float(b), Value::Float(f)) => b.append_value(f),
            (Col::Float(b), Value::Int(i)) => b.append_value(i as f64),
            (Col::Float(b), Value::Null) => b.append_null(),
            (Col::Ts(b), Value::Int(ms)) => b.append_value(ms.saturating_mul(1000)),
            (Col::Ts(b), Value::Null) => b.append_null(),
            (Col::Date(b), Value::Int(d)) => match i32::try_from(d) {
                Ok(d) => b.append_value(d),
                Err(_) => return false,
            },
            (Col::Date(b), Value::Null) => b.append_null(),
            _ => return false,
        }
        true
    }

    /// The column so far; the builder starts again with room for as many rows (and, for
    /// text, bytes), so the next batch fills it without growing and copying it.
    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Text(b) => {
                let a = b.finish();
                *b = StringBuilder::with_capacity(a.len(), a.value_data().len());
                Arc::new(a)
            }
            Col::Int(b) => {
                let a = b.finish();
                *b = Int64Builder::with_capacity(a.len());
                Arc::new(a)
            }
            Col::Float(b) => {
                let a = b.finish();
                *b = Float64Builder::with_capacity(a.len());
                Arc::new(a)
            }
            Col::Ts(b) => {
                let a = b.finish();
                *b = TimestampMicrosecondBuilder::with_capacity(a.len()).with_timezone("UTC");
                Arc::new(a)
            }
            Col::Date(b) => {
                let a = b.finish();
                *b = Date32Builder::with_capacity(a.len());
                Arc::new(a)
            }
        }
    }
}

struct Part {
    cols: Vec<Col>,
    rows: usize,
}

/// Sorts rows into per-partition builders and hands full batches to the encoder.
pub struct PartitionSink {
    table: &'static Table,
    parts: BTreeMap<Option<i32>, Part>,
    buffered: usize,
    tx: SyncSender<Msg>,
    stopped: bool,
    rows: u64,
}

impl PartitionSink {
    /// A sink for `table` sending to `tx`.
    pub fn new(table: &'static Table, tx: SyncSender<Msg>) -> Self {
        Self {
            table,
            parts: BTreeMap::new(),
            buffered: 0,
            tx,
            stopped: false,
            rows: 0,
        }
    }

    fn partition_of(&self, row: &[Value<'_>]) -> Result<Option<i32>, String> {
        let Some(i) = self.table.partition else {
            return Ok(None);
        };
        match (self.table.columns[i].kind, row.get(i)) {
            (Kind::Timestamp, Some(Value::Int(ms))) => Ok(Some(ms.div_euclid(DAY_MS) as i32)),
            (Kind::Date, Some(Value::Int(d))) => Ok(Some(*d as i32)),
            _ => Err(format!(
                "{}.{}: no time to partition by",
                self.table.name, self.table.columns[i].name
            )),
        }
    }

    fn flush(&mut self, key: Option<i32>) -> bool {
        let Some(part) = self.parts.get_mut(&key) else {
            return true;
        };
        if part.rows == 0 {
            return true;
        }
        let arrays: Vec<ArrayRef> = part.cols.iter_mut().map(Col::finish).collect();
        self.buffered -= part.rows;
        part.rows = 0;
        let msg = match RecordBatch::try_new(self.table.schema(), arrays) {
            Ok(b) => Msg::Batch(key, b),
            Err(e) => Msg::Abort(format!("{}: {e}", self.table.name)),
        };
        let ok = !matches!(msg, Msg::Abort(_));
        self.tx.send(msg).is_ok() && ok
    }

    fn flush_all(&mut self) -> bool {
        let keys: Vec<Option<i32>> = self.parts.keys().copied().collect();
        keys.into_iter().all(|k| self.flush(k))
    }

    fn fail(&mut self, why: String) -> bool {
        let _ = self.tx.send(Msg::Abort(why));
        self.stopped = true;
        false
    }
}

impl RowSink for PartitionSink {
    fn push(&mut self, row: &[Value<'_>]) -> bool {
        if self.stopped {
            return false;
        }
        let key = match self.partition_of(row) {
            Ok(k) => k,
            Err(e) => return self.fail(e),
        };
        let table = self.table;
        let part = self.parts.entry(key).or_insert_with(|| Part {
            cols: table.columns.iter().map(|c| Col::new(c.kind)).collect(),
            rows: 0,
        });
        for (i, (col, v)) in part.cols.iter_mut().zip(row.iter()).enumerate() {
            let c = &table.columns[i];
            if (matches!(v, Value::Null) && !c.nullable) || !col.push(*v) {
                let why = format!(
                    "{}.{}: a value does not fit {:?}",
                    table.name, c.name, c.kind
                );
                return self.fail(why);
            }
        }
        part.rows += 1;
        self.buffered += 1;
        self.rows += 1;
        let full = part.rows >= BATCH_ROWS;
        let ok = if full {
            self.flush(key)
        } else if self.buffered >= MAX_BUFFERED_ROWS {
            self.flush_all()
        } else {
            true
        };
        if !ok {
            self.stopped = true;
        }
        ok
    }

    fn end(&mut self) {
        if !self.stopped && !self.flush_all() {
            self.stopped = true;
        }
    }

    /// Builders of its own, batches to the same encoder (which writes both sinks' batches
    /// of a day into that day's one file).
    fn fork(&mut self) -> Option<Box<dyn RowSink>> {
        Some(Box::new(PartitionSink::new(self.table, self.tx.clone())))
    }
}

/// A file that was published.
#[derive(Debug, Clone)]
pub struct FileDone {
    /// Its path inside the destination.
    pub path: Path,
    /// Its partition day.
    pub day: Option<i32>,
    /// Rows in it.
    pub rows: u64,
    /// Its size.
    pub bytes: u64,
}

/// The path of a file: `TABLE/date=YYYY-MM-DD/NAME` (or `TABLE/NAME` unpartitioned).
pub fn file_path(table: &Table, day: Option<i32>, name: &str) -> Path {
    match day {
        Some(d) => Path::from(format!(
            "{}/date={}/{}",
            table.name,
            crate::store::day_date(d).format("%Y-%m-%d"),
            name
        )),
        None => Path::from(format!("{}/{}", table.name, name)),
    }
}

/// Published files so far in this process (the test hook counts them).
static PUBLISHED: AtomicUsize = AtomicUsize::new(0);

/// Test hook: with `RAILGUN_EXPORT_TEST_PAUSE_AFTER_FILES=N`, the process stops for good
/// after publishing its N-th file (before its watermark moves), so a test can kill it at
/// that exact point. Never set in production.
fn after_publish() {
    let n = PUBLISHED.fetch_add(1, Ordering::SeqCst) + 1;
    let pause = std::env::var("RAILGUN_EXPORT_TEST_PAUSE_AFTER_FILES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if pause == Some(n) {
        eprintln!("railgun export: test pause after {n} files");
        loop {
            std::thread::park();
        }
    }
}

/// Streams one file to the object store: a single put when it is small, a multipart
/// upload of [`PART_BYTES`] parts otherwise.
struct Upload {
    store: Arc<dyn ObjectStore>,
    path: Path,
    rt: Handle,
    buf: Vec<u8>,
    multipart: Option<Box<dyn MultipartUpload>>,
    bytes: u64,
}

impl Upload {
    fn new(store: Arc<dyn ObjectStore>, path: Path, rt: Handle) -> Self {
        Self {
            store,
            path,
            rt,
            buf: Vec::with_capacity(1 << 20),
            multipart: None,
            bytes: 0,
        }
    }

    fn send_part(&mut self) -> object_store::Result<()> {
        if self.multipart.is_none() {
            let mp = self.rt.block_on(self.store.put_multipart(&self.path))?;
            self.multipart = Some(mp);
        }
        let data = PutPayload::from(std::mem::take(&mut self.buf));
        if let Some(mp) = self.multipart.as_mut() {
            let part = mp.put_part(data);
            self.rt.block_on(part)?;
        }
        Ok(())
    }

    fn finish(mut self) -> object_store::Result<u64> {
        match self.multipart.take() {
            None => {
                let data = PutPayload::from(std::mem::take(&mut self.buf));
                self.rt.block_on(self.store.put(&self.path, data))?;
            }
            Some(mp) => {
                self.multipart = Some(mp);
                if !self.buf.is_empty() {
                    self.send_part()?;
                }
                if let Some(mut mp) = self.multipart.take() {
                    self.rt.block_on(mp.complete())?;
                }
            }
        }
        Ok(self.bytes)
    }

    fn abort(mut self) {
        if let Some(mut mp) = self.multipart.take() {
            let _ = self.rt.block_on(mp.abort());
        }
    }
}

impl Write for Upload {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.bytes += data.len() as u64;
        if self.buf.len() >= PART_BYTES {
            self.send_part().map_err(std::io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One file being written.
enum FileWriter {
    Parquet(Box<ArrowWriter<Upload>>),
    Ndjson(Upload),
}

/// Columns with a different value in (nearly) every row: a dictionary would never pay, and
/// building it (hashing every value until the dictionary page overflows) costs the encoder.
fn without_dictionary(c: &Column) -> bool {
    c.kind == Kind::Timestamp || matches!(c.name, "event_id" | "report_id" | "decision_id")
}

/// zstd level 1, row groups of [`ROW_GROUP_ROWS`], dictionaries where values repeat.
fn properties(table: &Table) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("railgun export {}", env!("CARGO_PKG_VERSION")));
    for c in table.columns.iter().filter(|c| without_dictionary(c)) {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c.name), false);
    }
    b.build()
}

impl FileWriter {
    fn open(
        format: Format,
        table: &Table,
        upload: Upload,
    ) -> Result<Self, parquet::errors::ParquetError> {
        Ok(match format {
            Format::Parquet => {
                let options = ArrowWriterOptions::new()
                    .with_properties(properties(table))
                    .with_skip_arrow_metadata(true);
                FileWriter::Parquet(Box::new(ArrowWriter::try_new_with_options(
                    upload,
                    table.schema(),
                    options,
                )?))
            }
            Format::Ndjson => FileWriter::Ndjson(upload),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        match self {
            FileWriter::Parquet(w) => w.write(batch).map_err(|e| e.to_string()),
            FileWriter::Ndjson(u) => {
                let mut out = Vec::with_capacity(batch.num_rows() * 256);
                ndjson(batch, &mut out);
                u.write_all(&out).map_err(|e| e.to_string())
            }
        }
    }

    fn finish(self) -> Result<u64, String> {
        let upload = match self {
            FileWriter::Parquet(w) => w.into_inner().map_err(|e| e.to_string())?,
            FileWriter::Ndjson(u) => u,
        };
        upload.finish().map_err(|e| e.to_string())
    }

    fn abort(self) {
        match self {
            FileWriter::Parquet(w) => {
                // The writer's inner upload is only reachable by finishing the file; an
                // unfinished multipart upload is aborted by the store's own lifecycle.
                drop(w);
            }
            FileWriter::Ndjson(u) => u.abort(),
        }
    }
}

/// Writes one batch as newline-delimited JSON: one object per row, timestamps as RFC 3339
/// UTC with microseconds, dates as `YYYY-MM-DD`, nulls as `null`.
fn ndjson(batch: &RecordBatch, out: &mut Vec<u8>) {
    let schema = batch.schema();
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| serde_json::to_string(f.name()).unwrap_or_default())
        .collect();
    for row in 0..batch.num_rows() {
        out.push(b'{');
        for (i, col) in batch.columns().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(names[i].as_bytes());
            out.push(b':');
            if col.is_null(row) {
                out.extend_from_slice(b"null");
                continue;
            }
            match col.data_type() {
                DataType::Utf8 => {
                    let _ = serde_json::to_writer(&mut *out, col.as_string::<i32>().value(row));
                }
                DataType::Int64 => {
                    let _ = write!(out, "{}", col.as_primitive::<Int64Type>().value(row));
                }
                DataType::Float64 => {
                    let v = col.as_primitive::<Float64Type>().value(row);
                    let _ = serde_json::to_writer(&mut *out, &v);
                }
                DataType::Timestamp(..) => {
                    let us = col.as_primitive::<TimestampMicrosecondType>().value(row);
                    let t = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
                    let _ = write!(out, "\"{}\"", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
                }
                DataType::Date32 => {
                    let d = col.as_primitive::<Date32Type>().value(row);
                    let _ = write!(out, "\"{}\"", crate::store::day_date(d).format("%Y-%m-%d"));
                }
                _ => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

/// Encodes what arrives on `rx` into one file per partition named `name`, and publishes
/// them all once the channel closes. On [`Msg::Abort`] or any failure nothing more is
/// published and the uploads in flight are aborted.
pub fn encode(
    rx: Receiver<Msg>,
    store: Arc<dyn ObjectStore>,
    table: &'static Table,
    format: Format,
    name: String,
    rt: Handle,
) -> Result<Vec<FileDone>, ExportError> {
    let mut files: BTreeMap<Option<i32>, (FileWriter, u64)> = BTreeMap::new();
    let abort_all = |files: BTreeMap<Option<i32>, (FileWriter, u64)>| {
        for (_, (w, _)) in files {
            w.abort();
        }
    };
    for msg in rx {
        match msg {
            Msg::Abort(why) => {
                abort_all(files);
                return Err(ExportError::Rows(why));
            }
            Msg::Batch(day, batch) => {
                let rows = batch.num_rows() as u64;
                let failed = match files.entry(day) {
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        let (w, n) = e.get_mut();
                        *n += rows;
                        w.write(&batch).err()
                    }
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let path = file_path(table, day, &name);
                        let upload = Upload::new(store.clone(), path, rt.clone());
                        match FileWriter::open(format, table, upload) {
                            Ok(mut w) => {
                                let failed = w.write(&batch).err();
                                e.insert((w, rows));
                                failed
                            }
                            Err(err) => Some(err.to_string()),
                        }
                    }
                };
                if let Some(reason) = failed {
                    abort_all(files);
                    return Err(ExportError::Write {
                        path: file_path(table, day, &name).to_string(),
                        reason,
                    });
                }
            }
        }
    }
    let mut done = Vec::with_capacity(files.len());
    let mut rest = files.into_iter();
    while let Some((day, (w, rows))) = rest.next() {
        let path = file_path(table, day, &name);
        match w.finish() {
            Ok(bytes) => {
                done.push(FileDone {
                    path,
                    day,
                    rows,
                    bytes,
                });
                after_publish();
            }
            Err(reason) => {
                for (_, (w, _)) in rest {
                    w.abort();
                }
                return Err(ExportError::Write {
                    path: path.to_string(),
                    reason,
                });
            }
        }
    }
    Ok(done)
}
