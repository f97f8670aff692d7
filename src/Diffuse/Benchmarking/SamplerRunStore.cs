using Diffuse.Checkpoints;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.IO;
using Diffuse.Sampling;
using Diffuse.Training;

namespace Diffuse.Benchmarking;

/// <summary>One measured setting in <see cref="SamplerRunStore.FileName"/>.</summary>
/// <param name="Sampler">The sampler's name (<see cref="SamplerNames"/>).</param>
/// <param name="Spacing">The spacing's name (<see cref="SamplerSpacings"/>).</param>
/// <param name="Steps">The step count.</param>
/// <param name="Nfe">Network evaluations per sample.</param>
/// <param name="Score">The metric's value (NaN when the samples were not finite).</param>
/// <param name="StdError">Its standard error.</param>
/// <param name="Seconds">Wall time of drawing the samples.</param>
/// <param name="Details">The metric's other figures.</param>
public sealed record StoredRun(string Sampler, string Spacing, int Steps, int Nfe, double Score, double StdError, double Seconds, Dictionary<string, double>? Details);

/// <summary>
/// The measurements of <c>diffuse bench-samplers</c> kept in the model folder (bench-samplers.runs.json), one per
/// sampler setting, saved atomically after every setting. A later benchmark of the same model weights, metric, samples
/// and seed (the <see cref="Key"/>) reuses them (<see cref="SamplerBenchmark.Run"/>'s <c>known</c>): an interrupted run
/// resumes where it stopped, and adding budgets or samplers measures only the new settings, so an image model's
/// full-length reference, hours on a CPU, is drawn once. Measurements under another key are discarded when the first
/// new one is saved.
/// </summary>
public sealed class SamplerRunStore
{
    /// <summary>The file name inside a model folder.</summary>
    public const string FileName = "bench-samplers.runs.json";

    /// <summary>The format marker of the file.</summary>
    public const string FormatName = "diffuse-sampler-runs/1";

    private static JsonSerializerOptions Json => SamplerRecord.Json;

    private sealed record FileContent(string Format, string Key, List<StoredRun> Runs);

    private readonly Dictionary<SamplerSetting, SamplerRun> _runs = new();

    private SamplerRunStore(string path, string key, int discarded)
    {
        FilePath = path;
        Key = key;
        Discarded = discarded;
    }

    /// <summary>The file.</summary>
    public string FilePath { get; }

    /// <summary>What the measurements depend on besides the setting (see <see cref="KeyOf"/>).</summary>
    public string Key { get; }

    /// <summary>Measurements found in the file under another key, which the next save replaces.</summary>
    public int Discarded { get; }

    /// <summary>The measurements under <see cref="Key"/>, for <see cref="SamplerBenchmark.Run"/>.</summary>
    public IReadOnlyCollection<SamplerRun> Runs => _runs.Values;

    /// <summary>
    /// The key of measurements on the model in <paramref name="modelFolder"/>: a SHA-256 digest of its weights file and
    /// of <paramref name="parts"/> (the metric, its real data, the sample count, seed, classes and guidance).
    /// </summary>
    public static string KeyOf(string modelFolder, IEnumerable<string> parts)
    {
        string weights = Path.Combine(modelFolder, ModelFolder.WeightsFile);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        if (File.Exists(weights))
        {
            // Streamed: a large model's weights are hashed without holding them in memory.
            using var stream = File.OpenRead(weights);
            hash.AppendData(SHA256.HashData(stream));
        }
        hash.AppendData(Encoding.UTF8.GetBytes(string.Join("\n", parts)));
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>
    /// Opens the store of <paramref name="folder"/> for <paramref name="key"/>: the measurements saved under that key, or
    /// none (a missing file, or one of another key). A file that is not a valid store is a <see cref="DiffuseException"/>
    /// that names it.
    /// </summary>
    public static SamplerRunStore Open(string folder, string key)
    {
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) return new SamplerRunStore(path, key, 0);
        string fix = "Delete it to measure every setting again.";
        FileContent? content;
        try
        {
            content = JsonSerializer.Deserialize<FileContent>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new DiffuseException($"{path} is not a valid file of earlier sampler measurements ({e.Message}). {fix}");
        }
        if (content is null || content.Format != FormatName || content.Key is null || content.Runs is null)
            throw new DiffuseException($"{path} is not a file of earlier sampler measurements (expected format '{FormatName}'). {fix}");
        if (content.Key != key) return new SamplerRunStore(path, key, content.Runs.Count);
        var store = new SamplerRunStore(path, key, 0);
        foreach (var stored in content.Runs)
        {
            if (stored is null || !SamplerNames.All.Contains(stored.Sampler, StringComparer.OrdinalIgnoreCase) ||
                SamplerSpacings.TryParse(stored.Spacing) is not { } spacing || !SamplerSpacings.Fits(SamplerNames.Parse(stored.Sampler), spacing) ||
                stored.Steps < 1 || stored.Nfe < 1)
                throw new DiffuseException($"{path} holds an invalid setting ({stored?.Sampler}, {stored?.Spacing}, {stored?.Steps} steps). {fix}");
            var setting = new SamplerSetting(SamplerNames.Parse(stored.Sampler), spacing, stored.Steps);
            var details = (stored.Details ?? new Dictionary<string, double>()).Select(d => new KeyValuePair<string, double>(d.Key, d.Value)).ToArray();
            store._runs[setting] = new SamplerRun(setting, 0, stored.Nfe, new QualityMeasurement(stored.Score, stored.StdError, details), stored.Seconds);
        }
        return store;
    }

    /// <summary>Adds (or replaces) the measurement of <paramref name="run"/>'s setting and saves the file atomically.</summary>
    public void Add(SamplerRun run)
    {
        _runs[run.Setting] = run;
        var content = new FileContent(FormatName, Key, _runs.Values.Select(r => new StoredRun(
            SamplerNames.Name(r.Setting.Kind), SamplerSpacings.Name(r.Setting.Spacing), r.Setting.Steps, r.FunctionEvaluations,
            r.Quality.Value, r.Quality.StdError, r.Seconds, r.Quality.Details.ToDictionary(d => d.Key, d => d.Value))).ToList());
        AtomicFile.WriteAllText(FilePath, JsonSerializer.Serialize(content, Json) + "\n");
    }
}
