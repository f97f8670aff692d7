namespace Diffuse.Cli;

/// <summary>
/// Which class each image sample gets and how the grid is laid out: the rule of <c>diffuse sample</c>, shared with
/// <c>diffuse serve</c> so that the same options give the same images. One class throughout when a class is given;
/// for a class-conditional model without one, rows of classes 0 … K − 1 with as many samples each (count rounded down
/// to a multiple of K, at least one per class); for an unconditional model, a square-ish grid without labels.
/// </summary>
/// <param name="Count">Number of samples drawn.</param>
/// <param name="Labels">The class of each sample (computed when asked), or null for an unconditional model.</param>
/// <param name="Columns">Images per grid row.</param>
/// <param name="RowLabels">Labels left of the grid's rows (one per class), or null.</param>
/// <param name="OnlyClass">The one class sampled, or null.</param>
public sealed record ImageSamplePlan(int Count, IReadOnlyList<long>? Labels, int Columns, IReadOnlyList<string>? RowLabels, long? OnlyClass)
{
    /// <summary>Default count without a class: 100 images, or 10 per class for a class-conditional model.</summary>
    public const int DefaultCount = 100;

    /// <summary>Default count with a class.</summary>
    public const int DefaultClassCount = 25;

    /// <summary>The plan for <paramref name="count"/> samples (null: the default) of <paramref name="only"/> (null: every class) from <paramref name="model"/>.</summary>
    /// <exception cref="DiffuseException">The count is too large to number.</exception>
    public static ImageSamplePlan For(DiffusionModel model, int? count, long? only)
    {
        int classes = model.ClassCount;
        if (classes > 0 && only is null)
        {
            int perClass = count is { } n ? Math.Max(1, n / classes) : 10;
            if (perClass > int.MaxValue / classes) throw new DiffuseException($"--count {count} is more samples than can be numbered; give at most {int.MaxValue:N0}.");
            int total = perClass * classes;
            return new(total, new ClassLabels(total, i => i / perClass), perClass, model.ClassNames.Select((name, i) => $"{i} {name}").ToArray(), null);
        }
        int drawn = count ?? (only is null ? DefaultCount : DefaultClassCount);
        return new(drawn, only is { } k ? new ClassLabels(drawn, _ => k) : null, (int)Math.Ceiling(Math.Sqrt(drawn)), null, only);
    }

    /// <summary>The class of each of <c>count</c> samples, computed when asked (no array of --count labels).</summary>
    private sealed class ClassLabels(int count, Func<int, long> classOf) : IReadOnlyList<long>
    {
        public long this[int index] => (uint)index < (uint)count ? classOf(index) : throw new ArgumentOutOfRangeException(nameof(index));

        public int Count => count;

        public IEnumerator<long> GetEnumerator()
        {
            for (int i = 0; i < count; i++) yield return classOf(i);
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
