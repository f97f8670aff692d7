using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Diffuse.Configuration;
using Diffuse.IO;

namespace Diffuse.Checkpoints;

/// <summary>
/// The one place that knows the layout of a model folder: <c>config.json</c> (the configuration, with the digests of the
/// files it belongs to), <c>model.safetensors</c> (EMA weights), <c>resume.safetensors</c> (the training state) and
/// <c>loss.csv</c>. A checkpoint is written as one atomic unit: every new file first goes to <c>&lt;name&gt;.next</c>
/// (each written atomically and flushed to disk), then the new config.json replaces the old one in a single rename —
/// the commit — and only then do the <c>.next</c> files replace theirs. A reader therefore finds either the previous
/// complete checkpoint (a crash before the commit: the <c>.next</c> files are leftovers) or the new one (a crash after
/// it: each file's digest in config.json names the <c>.next</c> file where the rename did not happen yet); never a
/// mix. <see cref="Repair"/> completes or removes what an interrupted write left, and a file whose digest differs from
/// the config's — weights of another run copied in — is refused, naming it. Folders written before digests existed
/// (and the shipped models) load as they are.
/// </summary>
public sealed class ModelFolder
{
    /// <summary>File of the configuration.</summary>
    public const string ConfigFile = "config.json";
    /// <summary>File of the EMA weights used for sampling.</summary>
    public const string WeightsFile = "model.safetensors";
    /// <summary>File of the full training state used to resume.</summary>
    public const string ResumeFile = "resume.safetensors";
    /// <summary>File of the loss history.</summary>
    public const string LossFile = "loss.csv";
    /// <summary>Suffix of a checkpoint file written but not yet in place.</summary>
    public const string NextSuffix = ".next";

    /// <summary>
    /// Called at each boundary of a checkpoint write with its name (for fault-injection tests: a hook may kill the
    /// process or throw an <see cref="IOException"/> there). Names: weights-written, resume-written, loss-written,
    /// config-written, committed, weights-renamed, resume-renamed, loss-renamed.
    /// </summary>
    internal static Action<string>? FaultPoint { get; set; }

    /// <summary>A model folder at <paramref name="path"/> (it need not exist yet).</summary>
    /// <param name="path">The folder.</param>
    public ModelFolder(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Path = path;
    }

    /// <summary>The folder.</summary>
    public string Path { get; }

    /// <summary>The path of a file of the folder.</summary>
    /// <param name="name">The file's name, such as <see cref="WeightsFile"/>.</param>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Whether the folder holds a committed checkpoint (a config.json).</summary>
    public bool HoldsModel => System.IO.File.Exists(File(ConfigFile));

    /// <summary>
    /// Writes a checkpoint as one atomic unit (see the class summary): the weights, the resume state and the loss
    /// history through their writers, then the config with their digests.
    /// </summary>
    /// <param name="config">The configuration (its <see cref="DiffusionModelConfig.Files"/> is set here).</param>
    /// <param name="writeWeights">Writes model.safetensors to the path it is given.</param>
    /// <param name="writeResume">Writes resume.safetensors to the path it is given, or null for none.</param>
    /// <param name="lossCsv">The loss history's CSV text, or null for none.</param>
    /// <exception cref="DiffuseException">A file cannot be written (full disk, no permission); the previous checkpoint is intact.</exception>
    public void Write(DiffusionModelConfig config, Action<string> writeWeights, Action<string>? writeResume, string? lossCsv)
    {
        bool committed = false;
        try
        {
            Directory.CreateDirectory(Path);
            writeWeights(File(WeightsFile + NextSuffix));
            Fault("weights-written");
            string? resumeDigest = null, lossDigest = null;
            if (writeResume is not null)
            {
                writeResume(File(ResumeFile + NextSuffix));
                resumeDigest = Digest(File(ResumeFile + NextSuffix));
                Fault("resume-written");
            }
            if (lossCsv is not null)
            {
                AtomicFile.WriteAllText(File(LossFile + NextSuffix), lossCsv);
                lossDigest = Digest(File(LossFile + NextSuffix));
                Fault("loss-written");
            }
            var files = new CheckpointFiles(Digest(File(WeightsFile + NextSuffix)), resumeDigest, lossDigest);
            AtomicFile.WriteAllText(File(ConfigFile + NextSuffix), (config with { Files = files }).ToJson());
            Fault("config-written");
            System.IO.File.Move(File(ConfigFile + NextSuffix), File(ConfigFile), overwrite: true);   // the commit
            committed = true;
            Fault("committed");
            MoveInPlace(WeightsFile, "weights-renamed");
            if (writeResume is not null) MoveInPlace(ResumeFile, "resume-renamed");
            else System.IO.File.Delete(File(ResumeFile));
            if (lossCsv is not null) MoveInPlace(LossFile, "loss-renamed");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string state = committed ? $"The checkpoint of step {config.Step} is committed; its files are put in place when the folder is next loaded or resumed."
                : HoldsModel ? "The previous checkpoint is intact; free space or fix the folder's permissions, then resume."
                : "No checkpoint was written; free space or fix the folder's permissions and train again.";
            throw new DiffuseException($"could not write the checkpoint of step {config.Step} to '{Path}': {e.Message}. {state}", e);
        }
    }

    /// <summary>Whether an interrupted checkpoint write left files that <see cref="Repair"/> would complete or remove.</summary>
    public bool HasLeftovers =>
        Directory.Exists(Path) && (new[] { ConfigFile, WeightsFile, ResumeFile, LossFile }.Any(n => System.IO.File.Exists(File(n + NextSuffix)))
                                   || AtomicFile.StaleTemporaries(Path).Any());

    /// <summary>
    /// <see cref="Repair"/> under the folder's lock when there are leftovers; nothing (an empty list) when there are none,
    /// when another process is writing (it completes its own checkpoint) or when the folder is read-only.
    /// </summary>
    public IReadOnlyList<string> RepairIfIdle()
    {
        if (!HasLeftovers) return Array.Empty<string>();
        try
        {
            using var folderLock = FolderLock.Acquire(Path);
            return Repair();
        }
        catch (Exception e) when (e is DiffuseException or IOException or UnauthorizedAccessException)
        {
            return Array.Empty<string>();
        }
    }

    /// <summary>
    /// Completes or undoes what an interrupted checkpoint write left in the folder and returns what it did, one line each
    /// (empty when there was nothing to do): <c>.next</c> files that the committed config names are moved into place;
    /// those it does not name (written before a commit that never happened) are removed.
    /// </summary>
    /// <exception cref="DiffuseException">The config names a file that neither the file nor its <c>.next</c> matches.</exception>
    public IReadOnlyList<string> Repair()
    {
        var done = new List<string>();
        if (!Directory.Exists(Path)) return done;
        string pendingConfig = File(ConfigFile + NextSuffix);
        if (System.IO.File.Exists(pendingConfig))
        {
            System.IO.File.Delete(pendingConfig);
            done.Add($"removed {ConfigFile}{NextSuffix}, a checkpoint that was never committed (the previous one stands)");
        }
        var files = HoldsModel ? DiffusionModelConfig.Load(File(ConfigFile)).Files : null;
        foreach (var (name, digest) in new[] { (WeightsFile, files?.Weights), (ResumeFile, files?.Resume), (LossFile, files?.Loss) })
        {
            string next = File(name + NextSuffix);
            if (!System.IO.File.Exists(next)) continue;
            if (digest is not null && Digest(next) == digest && (!System.IO.File.Exists(File(name)) || Digest(File(name)) != digest))
            {
                System.IO.File.Move(next, File(name), overwrite: true);
                done.Add($"moved {name}{NextSuffix} into place: the checkpoint of step {DiffusionModelConfig.Load(File(ConfigFile)).Step} was committed but not completed");
            }
            else
            {
                System.IO.File.Delete(next);
                done.Add($"removed {name}{NextSuffix}, left by a checkpoint that was never committed");
            }
        }
        foreach (var stale in AtomicFile.StaleTemporaries(Path))
        {
            if (Directory.Exists(stale)) Directory.Delete(stale, recursive: true);
            else System.IO.File.Delete(stale);
            done.Add($"removed {System.IO.Path.GetFileName(stale)}, a temporary file of a process that no longer runs");
        }
        return done;
    }

    /// <summary>
    /// The file to read for <paramref name="name"/> under the committed config <paramref name="config"/>: the file
    /// itself, or its <c>.next</c> while a committed write is completing. Folders without digests read the file itself.
    /// </summary>
    /// <param name="config">The committed configuration.</param>
    /// <param name="name">The file's name (<see cref="WeightsFile"/>, <see cref="ResumeFile"/> or <see cref="LossFile"/>).</param>
    /// <exception cref="DiffuseException">The file does not belong to this checkpoint.</exception>
    public string Resolve(DiffusionModelConfig config, string name)
    {
        string path = File(name);
        string? digest = name switch
        {
            WeightsFile => config.Files?.Weights,
            ResumeFile => config.Files?.Resume,
            LossFile => config.Files?.Loss,
            _ => throw new ArgumentException($"'{name}' is not a checkpoint file.", nameof(name)),
        };
        if (digest is null || !System.IO.File.Exists(path) && !System.IO.File.Exists(path + NextSuffix)) return path;
        if (System.IO.File.Exists(path) && Digest(path) == digest) return path;
        if (System.IO.File.Exists(path + NextSuffix) && Digest(path + NextSuffix) == digest) return path + NextSuffix;
        throw new DiffuseException($"{path} does not belong to the checkpoint in {File(ConfigFile)} (step {config.Step}): its SHA-256 differs from the one recorded there. It was replaced or damaged after the checkpoint was written; restore it or train again.");
    }

    /// <summary>The SHA-256 of a file, lower-case hex, read as a stream.</summary>
    /// <param name="path">The file.</param>
    public static string Digest(string path)
    {
        // Unbuffered: the hash reads through a pooled buffer, so checking a checkpoint allocates nothing large (every
        // garbage collection also finalizes the scalars TorchSharp creates implicitly, which it frees without keeping
        // them alive across native calls; the fewer collections during training, the fewer chances for that race).
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        return Convert.ToHexString(SHA256.HashData(stream)).ToLowerInvariant();
    }

    /// <summary>The CSV text of a loss history: step, loss and the loss of each timestep quarter (empty where none fell).</summary>
    /// <param name="losses">The loss of every step.</param>
    /// <param name="quartiles">Each step's loss per timestep quarter.</param>
    public static string LossCsv(IReadOnlyList<(int Step, double Loss)> losses, IReadOnlyList<double[]> quartiles)
    {
        var csv = new StringBuilder("step,loss,loss_q1,loss_q2,loss_q3,loss_q4\n");
        for (int i = 0; i < losses.Count; i++)
        {
            var (s, l) = losses[i];
            csv.Append(s).Append(',').Append(l.ToString("R", CultureInfo.InvariantCulture));
            foreach (double q in quartiles[i]) csv.Append(',').Append(double.IsNaN(q) ? "" : q.ToString("R", CultureInfo.InvariantCulture));
            csv.Append('\n');
        }
        return csv.ToString();
    }

    /// <summary>Reads a loss history written by <see cref="LossCsv"/>, up to <paramref name="lastStep"/>; lines that do not parse are skipped.</summary>
    /// <param name="path">The CSV file (missing: an empty history).</param>
    /// <param name="lastStep">The last step to keep.</param>
    /// <param name="quartileCount">The number of quarter columns.</param>
    public static (List<(int Step, double Loss)> Losses, List<double[]> Quartiles) ReadLosses(string path, int lastStep, int quartileCount)
    {
        var losses = new List<(int, double)>();
        var quartiles = new List<double[]>();
        if (!System.IO.File.Exists(path)) return (losses, quartiles);
        foreach (var line in System.IO.File.ReadLines(path).Skip(1))
        {
            var parts = line.Split(',');
            if (parts.Length < 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out int s) || s > lastStep
                || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double l)) continue;
            losses.Add((s, l));
            var q = new double[quartileCount];
            for (int i = 0; i < quartileCount; i++)
                q[i] = parts.Length > 2 + i && double.TryParse(parts[2 + i], NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : double.NaN;
            quartiles.Add(q);
        }
        return (losses, quartiles);
    }

    private void MoveInPlace(string name, string point)
    {
        System.IO.File.Move(File(name + NextSuffix), File(name), overwrite: true);
        Fault(point);
    }

    private static void Fault(string point) => FaultPoint?.Invoke(point);
}
