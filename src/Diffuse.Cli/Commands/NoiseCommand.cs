using System.ComponentModel;
using Diffuse.Data.Images;
using Diffuse.Imaging;
using Diffuse.Schedules;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse noise</c>.</summary>
public sealed class NoiseSettings : CommonSettings
{
    /// <summary>Data.</summary>
    [CommandOption("--data <DATA>")]
    [Description("Image data: fashion-mnist, mnist, an IDX file, a CIFAR-10 folder or a folder of images.")]
    public string? Data { get; init; }

    /// <summary>Output.</summary>
    [CommandOption("--out <FILE>")]
    [Description("forward.png (a grid: one row per image, one column per t) or forward.gif (an animation).")]
    public string? Out { get; init; }

    /// <summary>Spectrum chart.</summary>
    [CommandOption("--spectrum <FILE>")]
    [Description("spectrum.png: the radially averaged power spectrum of z_t at several t beside the spectrum of the noise, on --spectrum-count test images (the frequency view of the forward process).")]
    public string? Spectrum { get; init; }

    /// <summary>Images of the spectrum.</summary>
    [CommandOption("--spectrum-count <N>")]
    [Description("Images averaged in the spectrum (default 500).")]
    public int SpectrumCount { get; init; } = 500;

    /// <summary>Model.</summary>
    [CommandOption("--model <DIR>")]
    [Description("Take the data set and the schedule of this model (a folder or fashion-mnist) instead of --data and --schedule.")]
    public string? Model { get; init; }

    /// <summary>Count.</summary>
    [CommandOption("--count <N>")]
    [Description("Images shown (default 8).")]
    public int Count { get; init; } = 8;

    /// <summary>Columns.</summary>
    [CommandOption("--columns <N>")]
    [Description("Noise levels shown, from t = 0 to t = T (default 10; frames of a GIF: default 60).")]
    public int? Columns { get; init; }

    /// <summary>Schedule.</summary>
    [CommandOption("--schedule <NAME>")]
    [Description("linear (default), cosine or sigmoid.")]
    public string Schedule { get; init; } = "linear";

    /// <summary>Timesteps.</summary>
    [CommandOption("--timesteps <T>")]
    [Description("T (default 1000).")]
    public int Timesteps { get; init; } = 1000;

    /// <summary>Size.</summary>
    [CommandOption("--size <PX>")]
    [Description("Image size for folders of images (default 32).")]
    public int Size { get; init; } = 32;

    /// <summary>Seed.</summary>
    [CommandOption("--seed <S>")]
    [Description("Seed of the noise (default 0).")]
    public ulong Seed { get; init; }
}

/// <summary><c>diffuse noise</c>: the forward process q(z_t | x) on real images, as a grid or an animation.</summary>
public sealed class NoiseCommand : Command<NoiseSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, NoiseSettings settings, CancellationToken cancellationToken)
    {
        string? dataSpec = settings.Data;
        NoiseSchedule? modelSchedule = null;
        if (settings.Model is not null)
        {
            if (settings.Data is not null) throw new DiffuseException("give either --model (its data set and schedule) or --data, not both.");
            using var model = DiffusionModel.Load(ModelFolders.Resolve(settings.Model));
            if (!model.IsImage) throw new DiffuseException($"{settings.Model} was trained on a table; the forward process is shown on images.");
            dataSpec = ImageSources.FromTrainingSource(model.Config.Data.Source);
            modelSchedule = model.Schedule;
        }
        if (string.IsNullOrWhiteSpace(dataSpec)) throw new DiffuseException("--data is required: image data to noise (or --model, for its data set).");
        if (string.IsNullOrWhiteSpace(settings.Out) && string.IsNullOrWhiteSpace(settings.Spectrum)) throw new DiffuseException("--out is required: a .png or .gif file (or --spectrum spectrum.png).");
        string extension = Path.GetExtension(settings.Out ?? ".png").ToLowerInvariant();
        if (extension != ".png" && extension != ".gif") throw new DiffuseException($"--out must end in .png or .gif (got '{settings.Out}').");
        if (settings.Spectrum is { } chart && !chart.EndsWith(".png", StringComparison.OrdinalIgnoreCase)) throw new DiffuseException($"--spectrum must end in .png (got '{chart}').");
        if (settings.SpectrumCount < 1) throw new DiffuseException($"--spectrum-count must be at least 1 (got {settings.SpectrumCount}).");
        if (settings.Count < 1 || settings.Count > 64) throw new DiffuseException($"--count must be between 1 and 64 (got {settings.Count}).");
        int columns = settings.Columns ?? (extension == ".gif" ? 60 : 10);
        if (columns < 2) throw new DiffuseException($"--columns must be at least 2 (got {columns}).");
        settings.ApplyThreads();
        var schedule = modelSchedule ?? NoiseSchedule.Create(new ScheduleConfig(Parse.Schedule(settings.Schedule), settings.Timesteps));
        using var data = ImageSources.Load(dataSpec, DatasetSplit.Test, settings.Size);
        using var scope = NewDisposeScope();
        if (settings.Spectrum is { } spectrum) SpectrumChart.Write(spectrum, data, schedule, settings.SpectrumCount, settings.Seed);
        if (settings.Out is null) return 0;
        int count = Math.Min(settings.Count, data.Count);
        var x0 = ImageDataset.ToModelRange(data.Images.narrow(0, 0, count));
        var sampleShape = x0.shape.Skip(1).ToArray();
        var eps = Diffuse.Randomness.SeededNoise.Normal(settings.Seed, 0, 0, count, sampleShape);
        // Noise levels from t = 0 (the data) to t = T, evenly spaced in t.
        var levels = Enumerable.Range(0, columns).Select(k => (int)Math.Round((double)k * schedule.Timesteps / (columns - 1))).ToArray();
        var frames = levels.Select(t => t == 0 ? x0 : Diffuse.Schedules.GaussianProcess.Noise(x0, tensor(schedule.AlphaBar(t - 1), dtype: ScalarType.Float32), eps)).ToList();
        int c = (int)sampleShape[0], h = (int)sampleShape[1], w = (int)sampleShape[2];
        if (extension == ".png")
        {
            // Rows are images, columns noise levels: stack [count, columns, C, H, W].
            var grid = stack(frames, 1).reshape(count * columns, c, h, w);
            Figures.SaveImageGrid(settings.Out, Pictures.ToUnit(grid), count * columns, c, h, w, columns, scale: h < 64 ? 2 : 1);
        }
        else
        {
            var bitmaps = frames.Select(f => Figures.RenderImageGrid(Pictures.ToUnit(f), count, c, h, w, Math.Min(count, 8), scale: h < 64 ? 3 : 1)).ToList();
            try { GifWriter.Save(settings.Out, bitmaps, 8); }
            finally { foreach (var b in bitmaps) b.Dispose(); }
        }
        CliContext.Out.WriteLine($"wrote the forward process of {count} images at t = {string.Join(", ", levels)} to {Path.GetFullPath(settings.Out)}");
        return 0;
    }
}
