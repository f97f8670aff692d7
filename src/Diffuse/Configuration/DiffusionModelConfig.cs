using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Diffuse.Formulations;
using Diffuse.Models;
using Diffuse.Parameterization;
using Diffuse.Schedules;

namespace Diffuse.Configuration;

/// <summary>What a model was trained on: enough to map samples back to the data's units and to recognise the data.</summary>
/// <param name="Source">The data's name or file path as given.</param>
/// <param name="Columns">Column names (x, y for 2-D toy data).</param>
/// <param name="Mean">Per-column mean used for standardisation.</param>
/// <param name="Std">Per-column standard deviation used for standardisation.</param>
/// <param name="Count">Number of training rows.</param>
/// <param name="Fingerprint">SHA-256 (first 16 hex digits) of the training rows as float32.</param>
/// <param name="Holdout">Fraction of a CSV file's rows held out of training for evaluation (0 for none).</param>
/// <param name="Min">Per-column minimum of the training rows (original units).</param>
/// <param name="Max">Per-column maximum of the training rows (original units).</param>
/// <param name="ImageShape">
/// For images, the shape [channels, height, width] of one image (8-bit pixels, mapped to [−1, 1] by the data pipeline:
/// no standardisation, <paramref name="Columns"/>, <paramref name="Mean"/> and <paramref name="Std"/> are empty); null for tables.
/// </param>
/// <param name="ClassNames">Names of the classes of labelled data (index = label); null when the data has no labels.</param>
/// <param name="Licence">The data's licence and attribution when its source states one (<see cref="Data.Images.ImageDataset.Licence"/>), else null.</param>
public sealed record DataDescription(string Source, string[] Columns, double[] Mean, double[] Std, int Count, string Fingerprint,
    double Holdout = 0, double[]? Min = null, double[]? Max = null, int[]? ImageShape = null, string[]? ClassNames = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Licence = null)
{
    /// <summary>Whether the model was trained on images.</summary>
    [JsonIgnore]
    public bool IsImage => ImageShape is not null;

    /// <summary>The shape of one example: [C, H, W] for images, [D] for tables.</summary>
    [JsonIgnore]
    public long[] ExampleShape => ImageShape is { } s ? s.Select(v => (long)v).ToArray() : new long[] { Columns.Length };
}

/// <summary>
/// The resolved configuration of a diffusion model, saved as config.json beside every checkpoint: network, schedule,
/// parameterisation and formulation, data normalisation, training settings, the step reached and the library version.
/// </summary>
/// <param name="Network">The network's kind and shape (an MLP for tables, a U-Net for images).</param>
/// <param name="Schedule">The noise schedule.</param>
/// <param name="Prediction">What the network predicts.</param>
/// <param name="Data">The training data's description and normalisation.</param>
/// <param name="Training">Optimisation settings.</param>
/// <param name="Step">Optimizer steps completed when this was saved.</param>
/// <param name="LibraryVersion">Version of Diffuse that wrote it.</param>
/// <param name="Format">File format marker.</param>
public sealed record DiffusionModelConfig(
    NetworkConfig Network,
    ScheduleConfig Schedule,
    Prediction Prediction,
    DataDescription Data,
    TrainingConfig Training,
    int Step = 0,
    string? LibraryVersion = null,
    string Format = DiffusionModelConfig.FormatName)
{
    /// <summary>
    /// The formulation (DDPM, optionally with learned variances, or EDM); a config.json written without it loads as
    /// DDPM, the only formulation of earlier versions.
    /// </summary>
    public FormulationConfig Formulation { get; init; } = new();

    /// <summary>
    /// The digests of the checkpoint files this config belongs to (written by <see cref="Checkpoints.ModelFolder"/>), so
    /// that weights of another run are refused; null in folders written before digests existed and for models in memory.
    /// </summary>
    public CheckpointFiles? Files { get; init; }

    /// <summary>The model's discrete noise schedule (<see cref="FormulationConfig.CreateSchedule"/>).</summary>
    public NoiseSchedule CreateSchedule() => Formulation.CreateSchedule(Schedule);

    /// <summary>
    /// Builds the network with the current torch random state (seed it first for reproducibility), its time embedding
    /// scaled for the formulation (<see cref="FormulationConfig.NetworkTimesteps"/>).
    /// </summary>
    public DiffusionNetwork CreateNetwork() => Network.Create(Formulation.NetworkTimesteps(Schedule));

    /// <summary>The format marker of Diffuse model folders.</summary>
    public const string FormatName = "diffuse-model/1";

    /// <summary>
    /// This library's version, recorded in every saved config and printed by <c>diffuse --version</c>: the package
    /// version (SemVer, with any pre-release label) set once in Directory.Build.props, without build metadata such as
    /// the commit (<c>0.1.0</c>, <c>0.2.0-beta.1</c>).
    /// </summary>
    public static string CurrentLibraryVersion { get; } = ReadLibraryVersion();

    private static string ReadLibraryVersion()
    {
        var assembly = typeof(DiffusionModelConfig).Assembly;
        string? informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        if (!string.IsNullOrEmpty(informational)) return informational.Split('+')[0];
        return assembly.GetName().Version?.ToString(3) ?? "0.0.0";
    }

    /// <summary>JSON options: camelCase names, enums as strings, indented.</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        AllowOutOfOrderMetadataProperties = true,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    /// <summary>Serialises to JSON (with the current library version).</summary>
    public string ToJson() => JsonSerializer.Serialize(this with { LibraryVersion = LibraryVersion ?? CurrentLibraryVersion }, JsonOptions);

    /// <summary>Reads a config.json, with a clear error for anything that is not a Diffuse model config.</summary>
    public static DiffusionModelConfig Load(string path)
    {
        if (!File.Exists(path))
            throw new DiffuseException($"'{Path.GetDirectoryName(path)}' is not a Diffuse model folder: it has no config.json. Give the {Param.Of("Trainer.Run(folder)", "checkpoint")} folder of {Param.Of("Trainer.Run")}.");
        DiffusionModelConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<DiffusionModelConfig>(File.ReadAllText(path), JsonOptions);
        }
        catch (Exception e) when (e is JsonException or NotSupportedException)
        {
            throw new DiffuseException($"{path} is not a valid Diffuse model config ({e.Message}). Re-create the model with {Param.Of("Trainer.Run")}.");
        }
        if (config is null || config.Format != FormatName || config.Network is null || config.Schedule is null || config.Data is null || config.Training is null || config.Formulation is null)
            throw new DiffuseException($"{path} is not a Diffuse model config (expected format '{FormatName}'). Re-create the model with {Param.Of("Trainer.Run")}.");
        try
        {
            ConfigFileValidation.ValidateData(config.Data);
            config.Validate();
        }
        catch (DiffuseException e)
        {
            // The file's own field names (network.width), not the library's (MlpConfig.Width) nor a command's flags.
            string problem = e.Render(name => ConfigFileValidation.JsonFields.GetValueOrDefault(name)).TrimEnd('.');
            throw new DiffuseException($"{path} is not a usable model config: {problem}. Fix the file, or re-create the model with {Param.Of("Trainer.Run")}.", e);
        }
        return config;
    }

    /// <summary>
    /// Throws a <see cref="DiffuseException"/> naming the first inconsistency, including choices that do not fit
    /// together (zero terminal SNR with ε-prediction, learned variances with EDM, a network without the variance outputs).
    /// </summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Prediction)) throw new DiffuseException($"unknown prediction {(int)Prediction}: use epsilon, x0 or v.");
        if (!Enum.IsDefined(Schedule.Kind)) throw new DiffuseException($"unknown schedule kind {(int)Schedule.Kind}: use linear, cosine, sigmoid or custom.");
        if (Step < 0) throw new DiffuseException($"the step reached cannot be negative (got {Step}).");
        Network.Validate();
        Schedule.Validate();
        Training.Validate();
        Formulation.Validate(Prediction, Schedule, Training.MinSnrGamma);
        if (Network.OutputFactor != Formulation.NetworkOutputFactor)
            throw new DiffuseException(Formulation.LearnedVariance
                ? $"a model that learns its variances needs a network with an output factor of 2 (twice the data's channels); this one has {Network.OutputFactor}."
                : $"the network outputs {Network.OutputFactor} values per data element, but only a model that learns its variances uses more than one.");
        Network.CheckExampleShape(Data.ExampleShape);
        if (Data.ClassNames is { } names && Network.ClassCount > 0 && names.Length != Network.ClassCount)
            throw new DiffuseException($"the network is conditioned on {Network.ClassCount} classes but the data has {names.Length}.");
        PredictionConversion.RequireCompatible(Prediction, Schedule.ZeroTerminalSnr);
    }
}

/// <summary>The SHA-256 digests (lower-case hex) of a checkpoint's files, recorded in its config.json (<see cref="DiffusionModelConfig.Files"/>).</summary>
/// <param name="Weights">model.safetensors.</param>
/// <param name="Resume">resume.safetensors, or null when the checkpoint has none.</param>
/// <param name="Loss">loss.csv, or null when the checkpoint has none.</param>
public sealed record CheckpointFiles(string Weights, string? Resume = null, string? Loss = null);
