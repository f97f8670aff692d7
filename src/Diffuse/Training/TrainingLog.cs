using System.Globalization;
using System.Text;
using System.Text.Json;
using Diffuse.IO;

namespace Diffuse.Training;

/// <summary>
/// The log of every training step in a model folder, for tools: <c>metrics.csv</c> (a header row, then one row per step)
/// and <c>metrics.jsonl</c> (one JSON object per line), both appended and flushed after each step so that they can be
/// followed while the run goes on. Columns: step, loss (this step's), smoothed loss, learning rate, gradient norm
/// (before clipping), steps per second, seconds since the run (or resume) started, and this step's loss in each
/// quarter of the timesteps (empty or null when no example fell there). A resumed run first drops the lines past its
/// checkpoint, so the log always matches the steps that the checkpoint continues.
/// </summary>
public sealed class TrainingLog : IDisposable
{
    /// <summary>The CSV log's file name.</summary>
    public const string CsvFile = "metrics.csv";

    /// <summary>The JSON-lines log's file name.</summary>
    public const string JsonLinesFile = "metrics.jsonl";

    /// <summary>The CSV header.</summary>
    public const string Header = "step,loss,smoothed_loss,learning_rate,gradient_norm,steps_per_second,elapsed_seconds,loss_q1,loss_q2,loss_q3,loss_q4";

    private readonly StreamWriter _csv;
    private readonly StreamWriter _json;

    private TrainingLog(StreamWriter csv, StreamWriter json)
    {
        _csv = csv;
        _json = json;
    }

    /// <summary>
    /// Opens the logs of <paramref name="folder"/> to continue after <paramref name="step"/>: lines of later steps (of
    /// an interrupted run, or of a replaced model when <paramref name="step"/> is 0) are dropped first.
    /// </summary>
    /// <param name="folder">The model folder.</param>
    /// <param name="step">The step training continues from.</param>
    public static TrainingLog Open(string folder, int step)
    {
        Directory.CreateDirectory(folder);
        string csvPath = Path.Combine(folder, CsvFile), jsonPath = Path.Combine(folder, JsonLinesFile);
        Truncate(csvPath, step, line => line.Split(',')[0], Header);
        Truncate(jsonPath, step, line => JsonStep(line), null);
        var csv = Append(csvPath);
        if (csv.BaseStream.Length == 0) csv.WriteLine(Header);
        return new TrainingLog(csv, Append(jsonPath));
    }

    /// <summary>Appends one step.</summary>
    /// <param name="progress">The step's progress.</param>
    /// <param name="quartileLosses">This step's mean loss per quarter of the timesteps (NaN where none fell).</param>
    /// <param name="elapsed">Time since the run (or resume) started.</param>
    public void Append(TrainingProgress progress, IReadOnlyList<double> quartileLosses, TimeSpan elapsed)
    {
        var values = new[] { progress.Loss, progress.SmoothedLoss, progress.LearningRate, progress.GradientNorm, progress.StepsPerSecond, elapsed.TotalSeconds };
        var csv = new StringBuilder().Append(progress.Step.ToString(CultureInfo.InvariantCulture));
        foreach (double v in values.Concat(quartileLosses)) csv.Append(',').Append(Number(v));
        _csv.WriteLine(csv.ToString());
        _csv.Flush();
        var json = new StringBuilder("{\"step\":").Append(progress.Step.ToString(CultureInfo.InvariantCulture));
        string[] names = { "loss", "smoothedLoss", "learningRate", "gradientNorm", "stepsPerSecond", "elapsedSeconds" };
        for (int i = 0; i < names.Length; i++) json.Append(",\"").Append(names[i]).Append("\":").Append(JsonNumber(values[i]));
        json.Append(",\"quartileLosses\":[").Append(string.Join(",", quartileLosses.Select(JsonNumber))).Append("]}");
        _json.WriteLine(json.ToString());
        _json.Flush();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _csv.Dispose();
        _json.Dispose();
    }

    private static string Number(double v) => double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "";

    private static string JsonNumber(double v) => double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "null";

    private static StreamWriter Append(string path) =>
        new(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));

    private static string? JsonStep(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.TryGetProperty("step", out var s) ? s.GetRawText() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Keeps the lines whose step is at most <paramref name="step"/> (and the header), rewriting the file atomically when any goes.</summary>
    private static void Truncate(string path, int step, Func<string, string?> stepOf, string? header)
    {
        if (!File.Exists(path)) return;
        var lines = File.ReadAllLines(path);
        var kept = lines.Where(line => line == header
            || (int.TryParse(stepOf(line), NumberStyles.None, CultureInfo.InvariantCulture, out int s) && s <= step)).ToArray();
        if (step == 0) kept = kept.Where(line => line == header).ToArray();
        if (kept.Length == lines.Length) return;
        AtomicFile.WriteAllText(path, kept.Length == 0 ? "" : string.Join("\n", kept) + "\n");
    }
}
