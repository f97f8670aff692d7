using System.Text.Json;
using Diffuse.Checkpoints;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Data.Images;
using Diffuse.Distributed;
using Diffuse.Formulations;
using Diffuse.Models;
using Diffuse.Parameterization;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Training;

// How a trainer is made: from data (tables or images), or from a run folder to resume.
public sealed partial class Trainer
{
    /// <summary>
    /// Prepares training on <paramref name="data"/> [N, D] in its original units: fits the standardisation, records
    /// the data's description and builds the network from the seed. <paramref name="network"/>'s dimension is taken
    /// from the data, and its output multiplier from <paramref name="formulation"/> (default DDPM; an EDM formulation
    /// without settings gets σ_data = 1, the standard deviation of standardised columns). With a
    /// <paramref name="collective"/> of several ranks, every rank must call this with the same data and settings
    /// (checked); the initial weights are broadcast from rank 0.
    /// </summary>
    public static Trainer Create(Tensor data, string source, TrainingConfig? training = null, ScheduleConfig? schedule = null,
        Prediction prediction = Prediction.Epsilon, MlpConfig? network = null, IReadOnlyList<string>? columns = null, double holdout = 0,
        ICollective? collective = null, FormulationConfig? formulation = null, Device? device = null)
    {
        collective ??= SingleProcessCollective.Instance;
        training ??= new TrainingConfig();
        schedule ??= new ScheduleConfig();
        formulation = (formulation ?? new FormulationConfig()).Create().WithDataDefaults(sigmaData: 1.0);
        CheckSettings(training, schedule, prediction, formulation, collective);
        if (data.dim() != 2) throw new DiffuseException($"training data must be a table [rows, columns]; got shape [{string.Join(", ", data.shape)}].");
        int rows = (int)data.shape[0], dims = (int)data.shape[1];
        if (rows < 2) throw new DiffuseException($"training needs at least two rows of data; {source} has {rows}.");
        var names = columns?.ToArray() ?? (dims == 2 ? new[] { "x", "y" } : Enumerable.Range(1, dims).Select(i => $"x{i}").ToArray());
        var normalisation = Standardization.Fit(data, names);
        double[] min, max;
        using (var scope = NewDisposeScope())
        {
            var d = data.to_type(ScalarType.Float64);
            min = d.amin(new long[] { 0 }).data<double>().ToArray();
            max = d.amax(new long[] { 0 }).data<double>().ToArray();
        }
        var description = new DataDescription(source, names, normalisation.Mean, normalisation.Std, rows, DataFingerprint.Of(data), holdout, min, max);
        var mlp = (network ?? new MlpConfig(dims)) with { Dimensions = dims };
        mlp = mlp with { OutputMultiplier = formulation.NetworkOutputFactor };
        var config = new DiffusionModelConfig(mlp, schedule, prediction, description, training) { Formulation = formulation };
        config.Validate();
        CheckSameSetUp(config, collective);
        Trainer trainer;
        using (var applyScope = NewDisposeScope()) trainer = new Trainer(config, normalisation.Apply(data), null, collective, device);
        trainer.BroadcastState();
        return trainer;
    }

    /// <summary>
    /// Prepares training on images (pixels mapped to [−1, 1]); with labels and a <paramref name="network"/> whose
    /// <see cref="UNetConfig.NumClasses"/> is the data's class count (the default when the data is labelled), a
    /// class-conditional model trained with label dropout. <paramref name="network"/>'s channel count is taken from the
    /// data, and its output multiplier from <paramref name="formulation"/> (default DDPM; an EDM formulation without
    /// settings gets σ_data = 0.5, as Karras et al. use for images in [−1, 1]). With several ranks every rank must pass
    /// the same images (checked by fingerprint).
    /// </summary>
    public static Trainer Create(ImageDataset images, TrainingConfig? training = null, ScheduleConfig? schedule = null,
        Prediction prediction = Prediction.Epsilon, UNetConfig? network = null, ICollective? collective = null,
        FormulationConfig? formulation = null, Device? device = null)
    {
        collective ??= SingleProcessCollective.Instance;
        training ??= TrainingConfig.Images;
        schedule ??= new ScheduleConfig();
        formulation = (formulation ?? new FormulationConfig()).Create().WithDataDefaults(sigmaData: 0.5);
        CheckSettings(training, schedule, prediction, formulation, collective);
        if (images.Count < 2) throw new DiffuseException($"training needs at least two images; {images.Source} has {images.Count}.");
        int classes = images.Labels is null ? 0 : images.ClassNames.Length;
        network = (network ?? new UNetConfig { Channels = images.Channels, NumClasses = classes }) with { Channels = images.Channels };
        network = network with { OutputChannelsMultiplier = formulation.NetworkOutputFactor };
        if (network.NumClasses > 0 && images.Labels is null)
            throw new DiffuseException($"a class-conditional network needs labelled images, but {images.Source} has no labels. Train without classes.");
        if (network.NumClasses > 0 && network.NumClasses != classes)
            throw new DiffuseException($"the network is conditioned on {network.NumClasses} classes but {images.Source} has {classes}.");
        var description = new DataDescription(images.Source, Array.Empty<string>(), Array.Empty<double>(), Array.Empty<double>(), images.Count,
            DataFingerprint.Of(images), ImageShape: new[] { images.Channels, images.Height, images.Width },
            ClassNames: network.NumClasses > 0 ? images.ClassNames : null, Licence: images.Licence);
        var config = new DiffusionModelConfig(network, schedule, prediction, description, training) { Formulation = formulation };
        config.Validate();
        CheckSameSetUp(config, collective);
        return FromImages(config, images, collective, folder: null, device);
    }

    /// <summary>Restores an image run from <paramref name="folder"/>, checking that <paramref name="images"/> are the images it was trained on.</summary>
    public static Trainer Resume(string folder, ImageDataset images, int? steps = null, ICollective? collective = null, Device? device = null)
    {
        collective ??= SingleProcessCollective.Instance;
        var config = LoadForResume(folder, steps, collective, out var repaired);
        if (!config.Data.IsImage)
            throw new DiffuseException($"the run in '{folder}' was trained on a table ({config.Data.Source}), not on images. Resume with the same {Param.Of("Trainer.Resume(images)", "images")}.");
        if (DataFingerprint.Of(images) != config.Data.Fingerprint)
            throw new DiffuseException($"the images given ({images.Source}: {images.Count} images) are not the images the run in '{folder}' was trained on ({config.Data.Source}: {config.Data.Count} images). Resume with the same {Param.Of("Trainer.Resume(images)", "images")}.");
        var trainer = FromImages(config, images, collective, folder, device);
        trainer.RepairNotes = repaired;
        return trainer;
    }

    private static Trainer FromImages(DiffusionModelConfig config, ImageDataset images, ICollective collective, string? folder, Device? device)
    {
        // Not inside a dispose scope: the networks' parameters must outlive it.
        var labels = config.Network.ClassCount > 0 && images.Labels is { } l ? tensor(l) : null;
        var x = ImageDataset.ToModelRange(images.Images);
        Trainer trainer;
        try
        {
            trainer = new Trainer(config, x, labels, collective, device);
        }
        finally
        {
            x.Dispose();
            labels?.Dispose();
        }
        if (folder is not null && collective.Rank == 0) trainer.LoadState(folder);
        trainer.BroadcastState();
        trainer._ownFolder = folder is null ? null : Path.GetFullPath(folder);
        return trainer;
    }

    private static void CheckSettings(TrainingConfig training, ScheduleConfig schedule, Prediction prediction, FormulationConfig formulation,
        ICollective collective)
    {
        training.Validate();
        schedule.Validate();
        formulation.Validate(prediction, schedule, training.MinSnrGamma);
        PredictionConversion.RequireCompatible(prediction, schedule.ZeroTerminalSnr);
        CheckBatchCoversRanks(training.BatchSize, collective);
    }

    private static DiffusionModelConfig LoadForResume(string folder, int? steps, ICollective collective, out IReadOnlyList<string> repaired)
    {
        repaired = Array.Empty<string>();
        if (collective.Rank == 0 && Directory.Exists(folder))
            using (FolderLock.Acquire(folder))
                repaired = new ModelFolder(folder).Repair();
        var config = collective.Rank == 0 ? DiffusionModelConfig.Load(Path.Combine(folder, ModelFolder.ConfigFile)) : null;
        string json = collective.BroadcastString(config?.ToJson());
        config ??= JsonSerializer.Deserialize<DiffusionModelConfig>(json, DiffusionModelConfig.JsonOptions)
            ?? throw new InvalidOperationException("rank 0 broadcast an empty configuration.");
        if (steps is { } s) config = config with { Training = config.Training with { Steps = s } };
        config.Training.Validate();
        CheckBatchCoversRanks(config.Training.BatchSize, collective);
        return config;
    }

    /// <summary>
    /// Restores a run from <paramref name="folder"/> to continue it, checking that <paramref name="data"/> is the data it
    /// was trained on; <paramref name="steps"/> extends the run when given. With a <paramref name="collective"/> of
    /// several ranks only rank 0 reads <paramref name="folder"/>; the configuration and the whole training state are
    /// broadcast from it, so a checkpoint written by any number of ranks resumes on any other number.
    /// </summary>
    public static Trainer Resume(string folder, Tensor data, int? steps = null, ICollective? collective = null, Device? device = null)
    {
        collective ??= SingleProcessCollective.Instance;
        var config = LoadForResume(folder, steps, collective, out var repaired);
        if (config.Data.IsImage)
            throw new DiffuseException($"the run in '{folder}' was trained on images ({config.Data.Source}), not on a table. Resume with the same {Param.Of("Trainer.Resume(data)", "data")}.");
        string fingerprint = DataFingerprint.Of(data);
        if (fingerprint != config.Data.Fingerprint || data.dim() != 2 || data.shape[1] != config.Data.Columns.Length)
            throw new DiffuseException($"the data given ({data.shape[0]} rows × {(data.dim() > 1 ? data.shape[1] : 1)} columns) is not the data the run in '{folder}' was trained on ({config.Data.Source}: {config.Data.Count} rows × {config.Data.Columns.Length} columns). Resume with the same {Param.Of("Trainer.Resume(data)", "data")}.");
        var normalisation = new Standardization(config.Data.Mean, config.Data.Std);
        Trainer trainer;
        using (var scope = NewDisposeScope()) trainer = new Trainer(config, normalisation.Apply(data), null, collective, device);
        if (collective.Rank == 0) trainer.LoadState(folder);
        trainer.BroadcastState();
        trainer._ownFolder = Path.GetFullPath(folder);
        trainer.RepairNotes = repaired;
        return trainer;
    }

    private static void CheckBatchCoversRanks(int batch, ICollective collective)
    {
        if (batch < collective.Size)
            throw new DiffuseException($"{Param.Of("TrainingConfig.BatchSize")} {batch} is smaller than the number of processes ({collective.Size}): every process needs at least one example of each batch. Raise {Param.Of("TrainingConfig.BatchSize")} (it is the global batch, split over the processes) or launch fewer processes.");
    }

    /// <summary>Checks that every rank was given the same data and settings as rank 0 (different CSV files on different machines, say).</summary>
    private static void CheckSameSetUp(DiffusionModelConfig config, ICollective collective)
    {
        if (collective.Size == 1) return;
        string mine = config.ToJson();
        string root = collective.BroadcastString(collective.Rank == 0 ? mine : null);
        if (root == mine) return;
        var rootConfig = JsonSerializer.Deserialize<DiffusionModelConfig>(root, DiffusionModelConfig.JsonOptions);
        if (rootConfig?.Data.Fingerprint != config.Data.Fingerprint)
            throw new DiffuseException($"rank {collective.Rank} read other training data than rank 0 ({config.Data.Source}: {config.Data.Count} rows, fingerprint {config.Data.Fingerprint}; rank 0: {rootConfig?.Data.Count} rows, fingerprint {rootConfig?.Data.Fingerprint}). Give every process the same {Param.Of("Trainer.Create(data)", "data")} (the same file on every machine).");
        throw new DiffuseException($"rank {collective.Rank} was started with other training options than rank 0. Launch every process with the same command line.");
    }
}
