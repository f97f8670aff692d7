using Diffuse.Sampling;
using Diffuse.Training;

namespace Diffuse.Cli;

/// <summary>
/// Preview grids written while an image model trains: the same seeds every time (so the pictures show the model
/// improving, not the noise changing), one row per class for a conditional model, sampled from the EMA weights with
/// 20 DPM-Solver++(2M) steps on log-SNR-uniform noise levels.
/// </summary>
public static class Previews
{
    /// <summary>Seed of the preview samples.</summary>
    public const ulong Seed = 20_251_128;

    /// <summary>Images per row.</summary>
    public const int Columns = 8;

    /// <summary>The sampler used for previews.</summary>
    public static SamplerOptions Sampler { get; } = new(SamplerKind.DpmSolver2M, 20, Sigmas: NoiseLevelSpacing.LogSnr);

    /// <summary>Writes <c>previews/step-NNNNNN.png</c> in <paramref name="folder"/> and returns its path.</summary>
    public static string Write(Trainer trainer, string folder)
    {
        using var model = trainer.ToModel();
        int classes = model.ClassCount;
        int rows = classes > 0 ? classes : 4;
        long[]? labels = classes > 0 ? Enumerable.Range(0, rows * Columns).Select(i => (long)(i / Columns)).ToArray() : null;
        string path = Path.Combine(folder, "previews", $"step-{trainer.Step:D6}.png");
        bool wasTraining = model.Network.training;
        model.Network.eval();
        try
        {
            using var images = model.Sample(rows * Columns, Seed, Sampler, classes: labels, guidance: classes > 0 ? 2.0 : 1.0);
            Pictures.ImageGrid(path, images, Columns, classes > 0 ? model.ClassNames.ToArray() : null);
        }
        finally
        {
            if (wasTraining) model.Network.train();
        }
        return path;
    }
}
